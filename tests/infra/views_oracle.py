"""Typed views (docs/CONTRACT.md, section 6) written again in plain Python,
independently of the Rust code: from the NDJSON inputs of a lake's ingest runs
(in the order they ran) and its declared-type files, what each view must be
called, which columns of which types it has, what each row holds, and what each
schema file records. Values follow what Athena (Trino) computes for the view's
SQL: json columns as Trino re-serializes JSON (Jackson, Java's Double.toString),
array elements as Trino's casts from JSON convert them.

usage:
  views_oracle.py compare ACTUAL_DIR DECLARED_DIR RUN.ndjson...
      ACTUAL_DIR holds <view>.ndjson (`eventlake query --format json 'SELECT *
      FROM <view>'`) and <event_type>.schema.json (the lake's schema files).
      Prints {"views": n, "rows": n, "fields": n, "mismatches": [...]}.
"""

import datetime as dt
import decimal
import json
import math
import os
import re
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract_oracle  # noqa: E402

MAX_COLUMNS = 500
LEADING = ["event_uuid", "event_name", "event_subtype", "created_at", "created_datetime", "created_ts",
           "ingested_at", "created_date"]
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|([+-])(\d\d):(\d\d))")
I64 = (-(2 ** 63), 2 ** 63 - 1)
SCALARS = ("boolean", "bigint", "double", "timestamp", "varchar")


class Number:
    """A JSON number as written."""

    def __init__(self, text):
        self.text = text
        self.integer = re.fullmatch(r"-?\d+", text) is not None


def instant_millis(text):
    """Unix milliseconds of an RFC 3339 instant the ladder accepts, else None."""
    m = RFC3339.fullmatch(text)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    offset = 0
    if m.group(8) != "Z":
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * (1 if m.group(9) == "+" else -1)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    seconds = (moment - epoch) // dt.timedelta(seconds=1)
    millis = int(((m.group(7) or "") + "000")[:3])
    return seconds * 1000 + millis - offset * 60_000


def scalar_state(v):
    """The ladder's rung of one scalar; None for null; 'nested' otherwise."""
    if v is None:
        return None
    if v is True or v is False:
        return "boolean"
    if isinstance(v, Number):
        return "bigint" if v.integer and I64[0] <= int(v.text) <= I64[1] else "double"
    if isinstance(v, str):
        return "timestamp" if instant_millis(v) is not None else "varchar"
    return "nested"


def widen_scalar(a, b):
    if a == b:
        return a
    return "double" if {a, b} == {"bigint", "double"} else "varchar"


def widen(a, b):
    if a == "nothing":
        return b
    if b == "nothing":
        return a
    if a == "empty" and b == "empty":
        return "empty"
    if a == "empty" and isinstance(b, tuple):
        return b
    if b == "empty" and isinstance(a, tuple):
        return a
    if isinstance(a, str) and isinstance(b, str) and a in SCALARS and b in SCALARS:
        return widen_scalar(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return ("array", widen_scalar(a[1], b[1]))
    return "json"


def column_type(state):
    if state in ("nothing", "json"):
        return "json"
    if state == "empty":
        return "array(varchar)"
    if isinstance(state, tuple):
        return f"array({state[1]})"
    return state


def java_double(x):
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    _, digits, exponent = decimal.Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digits))
    scientific = len(digits) - 1 + exponent
    if 1e-3 <= abs(x) < 1e7:
        point = scientific + 1
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if len(digits) <= point:
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{scientific}"


def jackson_string(s):
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for c in s:
        if c in short:
            out.append(short[c])
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def jackson(v):
    """The JSON text Trino's json_extract + json_format give for a value."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Number):
        return str(int(v.text)) if v.integer else java_double(float(v.text))
    if isinstance(v, str):
        return jackson_string(v)
    if isinstance(v, Obj):
        return "{" + ",".join(jackson_string(k) + ":" + jackson(x) for k, x in v.pairs) + "}"
    return "[" + ",".join(jackson(x) for x in v) + "]"


class Obj:
    def __init__(self, pairs):
        self.pairs = pairs


def parse_value(text):
    return json.loads(text, parse_int=Number, parse_float=Number, object_pairs_hook=Obj)


def state_of_value(v):
    if isinstance(v, Obj):
        return "json"
    if isinstance(v, list):
        element = None
        for item in v:
            if isinstance(item, (Obj, list)):
                return "json"
            s = scalar_state(item)
            if s is not None:
                element = s if element is None else widen_scalar(element, s)
        return "empty" if element is None else ("array", element)
    s = scalar_state(v)
    return "nothing" if s is None else s


def scalar_text(v):
    """json_extract_scalar: a string's text, a number's JSON text, true/false."""
    if isinstance(v, str):
        return v
    if isinstance(v, Number):
        return v.text
    if v is True or v is False:
        return "true" if v else "false"
    return None


def to_bigint(text):
    if text is None or not re.fullmatch(r"-?\d+", text):
        return None
    n = int(text)
    return n if I64[0] <= n <= I64[1] else None


def to_double(text):
    if text is None:
        return None
    try:
        return float(decimal.Decimal(text))
    except decimal.InvalidOperation:
        return None


def element_as_varchar(item):
    if isinstance(item, str):
        return item
    if isinstance(item, Number):
        return item.text if item.integer else java_double(float(item.text)).strip('"')
    if item is True or item is False:
        return "true" if item else "false"
    raise ValueError


def element_as(kind, item):
    if kind == "varchar":
        return element_as_varchar(item)
    if kind == "bigint":
        if item is True or item is False:
            return int(item)
        if isinstance(item, Number):
            if item.integer:
                return to_bigint(item.text) if to_bigint(item.text) is not None else _fail()
            return math.floor(float(item.text) + 0.5)
        if isinstance(item, str):
            return to_bigint(item.strip()) if to_bigint(item.strip()) is not None else _fail()
    if kind == "double":
        if item is True or item is False:
            return float(item)
        if isinstance(item, (Number, str)):
            value = to_double(item.text if isinstance(item, Number) else item.strip())
            return value if value is not None else _fail()
    if kind == "boolean":
        if item is True or item is False:
            return item
        if isinstance(item, Number):
            return float(item.text) != 0
        if item in ("true", "false"):
            return item == "true"
    raise ValueError


def _fail():
    raise ValueError


def value(ctype, v):
    """The column's value for a field's value (missing fields are None)."""
    if v is None:
        return None
    if ctype == "boolean":
        return v if v is True or v is False else None
    if ctype == "bigint":
        return to_bigint(scalar_text(v))
    if ctype == "double":
        return to_double(scalar_text(v))
    if ctype == "timestamp":
        text = scalar_text(v)
        return None if text is None else instant_millis(text)
    if ctype == "varchar":
        return scalar_text(v)
    if ctype == "json":
        return jackson(v)
    element = ctype[len("array("):-1]
    if not isinstance(v, list):
        return None
    out = []
    for item in v:
        if item is None:
            out.append(None)
            continue
        if isinstance(item, (Obj, list)):
            return None
        if element == "timestamp":
            try:
                out.append(instant_millis(element_as_varchar(item)))
            except ValueError:
                return None
            continue
        try:
            out.append(element_as(element, item))
        except ValueError:
            return None
    return out


def plain_view(event_type):
    return "events_" + "".join("_" if c in "-." else c.lower() for c in event_type)


def plain_column(name):
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789_"
    out = "".join(c.lower() if c.isascii() and c.lower() in allowed else "_" for c in name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out


def deduplicate(names, taken):
    used, out = set(taken), []
    for name in names:
        chosen = name
        n = 2
        while chosen in used:
            chosen = f"{name}_{n}"
            n += 1
        used.add(chosen)
        out.append(chosen)
    return out


def addressable(name):
    return not any(c in '"\\' or unicodedata.category(c) == "Cc" for c in name)


def expected(runs, declared_dir):
    """{event_type: view description} from the runs' inputs."""
    first = {}
    for run in runs:
        with open(run, "rb") as f:
            for raw in f.read().split(b"\n"):
                if not raw.strip(b" \t\r\n"):
                    continue
                verdict = contract_oracle.verdict(raw.rstrip(b"\r"), (0, None, None))
                if isinstance(verdict, contract_oracle.Event) and verdict.key not in first:
                    fields = parse_value(raw.decode("utf-8")).pairs
                    payload = [(k, v) for k, v in fields if k not in contract_oracle.ENRICHED]
                    first[verdict.key] = (verdict, payload)
    by_type = {}
    for verdict, payload in first.values():
        by_type.setdefault(verdict.event_type, []).append((verdict, payload))
    order = sorted(by_type, key=lambda t: (min(v.key[1] for v, _ in by_type[t]), t))
    views = dict(zip(order, deduplicate([plain_view(t) for t in order], ["events", "events_unique"])))
    out = {}
    for event_type, rows in by_type.items():
        declared = {}
        path = os.path.join(declared_dir, f"{event_type}.declared.json")
        if os.path.exists(path):
            with open(path) as f:
                declared = json.load(f)["fields"]
        fields = {}
        for verdict, payload in rows:
            date = verdict.partition[1]
            for name, v in payload:
                f = fields.setdefault(name, {"state": "nothing", "count": 0, "dates": set()})
                f["state"] = widen(f["state"], state_of_value(v))
                f["count"] += v is not None
                f["dates"].add(date)
        for name in declared:
            fields.setdefault(name, {"state": "nothing", "count": 0, "dates": set()})
        ranked = sorted((n for n in fields if addressable(n)),
                        key=lambda n: (n not in declared, -fields[n]["count"], n.encode()))
        with_column = sorted(ranked[:MAX_COLUMNS], key=lambda n: n.encode())
        taken = LEADING + (["_rescued"] if declared else [])
        columns = dict(zip(with_column, deduplicate([plain_column(n) for n in with_column], taken)))
        for name, f in fields.items():
            f["column"] = columns.get(name)
            f["inferred"] = column_type(f["state"])
            f["type"] = declared.get(name, f["inferred"])
        view_rows = []
        for verdict, payload in rows:
            values = dict(payload)
            row = {"event_uuid": verdict.row["event_uuid"], "event_name": verdict.row["event_name"],
                   "event_subtype": verdict.row["event_subtype"], "created_at": verdict.row["created_at"],
                   "created_date": verdict.partition[1]}
            rescued = []
            for name in sorted(columns, key=lambda n: columns[n]):
                f = fields[name]
                got = value(f["type"], values.get(name))
                row[f["column"]] = got
                if name in declared and values.get(name) is not None and got is None:
                    rescued.append(jackson_string(name) + ":" + jackson(values[name]))
            if declared:
                row["_rescued"] = "{" + ",".join(rescued) + "}" if rescued else None
            view_rows.append(row)
        out[event_type] = {"view": views[event_type], "fields": fields, "rows": view_rows,
                           "types": {f["column"]: f["type"] for f in fields.values() if f["column"]},
                           "rescued": bool(declared)}
    return out


def actual_value(ctype, v):
    """An `eventlake query --format json` value in the oracle's terms."""
    if v is None:
        return None
    if ctype == "timestamp":
        return timestamp_millis(v)
    if ctype == "array(timestamp)":
        return [None if x is None else timestamp_millis(x) for x in v]
    return v


def timestamp_millis(text):
    moment = dt.datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=dt.timezone.utc)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (moment - epoch) // dt.timedelta(milliseconds=1)


def same(a, b):
    """Equal values of equal kinds (an integer is not a boolean; -0.0 is not 0.0)."""
    if isinstance(a, float) or isinstance(b, float):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        return numbers and a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


def compare(actual_dir, declared_dir, runs):
    want = expected(runs, declared_dir)
    mismatches, rows_checked, fields_checked = [], 0, 0
    for event_type, view in want.items():
        path = os.path.join(actual_dir, view["view"] + ".ndjson")
        if not os.path.exists(path):
            mismatches.append(f"{event_type}: no view {view['view']}")
            continue
        with open(path) as f:
            got = {r["event_uuid"]: r for r in map(json.loads, filter(str.strip, f))}
        if set(got) != {r["event_uuid"] for r in view["rows"]}:
            mismatches.append(f"{view['view']}: rows {sorted(got)} != {sorted(r['event_uuid'] for r in view['rows'])}")
            continue
        for row in view["rows"]:
            actual = got[row["event_uuid"]]
            expected_columns = LEADING + sorted(view["types"]) + (["_rescued"] if view["rescued"] else [])
            if list(actual) != expected_columns:
                mismatches.append(f"{view['view']}: columns {list(actual)} != {expected_columns}")
                break
            for column, value_wanted in row.items():
                ctype = view["types"].get(column)
                value_got = actual_value(ctype, actual[column])
                if not same(value_got, value_wanted):
                    mismatches.append(f"{view['view']} {row['event_uuid']} {column} ({ctype}): "
                                      f"got {value_got!r}, want {value_wanted!r}")
            rows_checked += 1
        with open(os.path.join(actual_dir, event_type + ".schema.json")) as f:
            schema = json.load(f)
        if schema["view"] != view["view"] or schema["rows"] != len(view["rows"]):
            mismatches.append(f"{event_type} schema: view/rows {schema['view']}/{schema['rows']}")
        recorded = {f["name"]: f for f in schema["fields"]}
        if set(recorded) != set(view["fields"]):
            mismatches.append(f"{event_type} schema fields {sorted(recorded)} != {sorted(view['fields'])}")
            continue
        for name, f in view["fields"].items():
            r = recorded[name]
            dates = sorted(f["dates"])
            want_field = (f["column"], f["type"], f["inferred"], f["count"],
                          dates[0] if dates else None, dates[-1] if dates else None)
            got_field = (r["column"], r["type"], r["inferred"], r["count"], r["first_date"], r["last_date"])
            if want_field != got_field:
                mismatches.append(f"{event_type} field {name!r}: got {got_field}, want {want_field}")
            fields_checked += 1
    return {"views": len(want), "rows": rows_checked, "fields": fields_checked, "mismatches": mismatches}


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[1] != "compare":
        sys.exit(__doc__)
    print(json.dumps(compare(sys.argv[2], sys.argv[3], sys.argv[4:])))
