"""The event contract (docs/CONTRACT.md, sections 1 and 2) written again in plain
Python, independently of the Rust code, as the e2e test's oracle: for one record's
bytes, either the reason class it must be rejected with, or what the lake must
hold for it. Written for the records `eventlake generate` makes (one rule broken
at a time); where several rules break at once the Rust code may name another.
"""

import datetime
import json
import re
from decimal import ROUND_HALF_EVEN, Decimal

MAX_RECORD_BYTES = 1_024_000
MAX_DEPTH = 128
YEAR_10000 = 253_402_300_800
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
HEX = "[0-9a-fA-F]"
HYPHENATED = f"{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}"
UUID_FORMS = re.compile(f"{HYPHENATED}|{HEX}{{32}}|\\{{{HYPHENATED}\\}}|urn:uuid:{HYPHENATED}")
ENRICHED = ("event_uuid", "event_name", "created_at", "created_datetime", "event_type", "event_subtype")


class Rejected(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _unique_object(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Rejected("duplicate_field")
    return dict(pairs)


def _no_constants(name):
    raise Rejected("invalid_json")


def _depth(value):
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _has_lone_surrogate(value):
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class Event:
    """A valid record: its dedupe key, partition and the row the lake must hold."""

    def __init__(self, fields, canonical_uuid, created_at):
        millis = int((created_at * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))
        self.key = (canonical_uuid, millis)
        moment = datetime.datetime.fromtimestamp(millis // 1000, tz=datetime.timezone.utc)
        name = fields["event_name"]
        parts = name.split(":")
        self.event_type = parts[0]
        self.partition = (self.event_type, moment.strftime("%Y-%m-%d"))
        whole = created_at == created_at.to_integral_value()
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
        self.row = {
            "event_uuid": canonical_uuid,
            "event_name": name,
            "event_subtype": parts[1] if len(parts) > 1 and parts[1] else None,
            "created_at": millis // 1000,
            "created_datetime": f"{stamp}Z" if whole else f"{stamp}.{millis % 1000:03d}Z",
            "payload": {k: v for k, v in fields.items() if k not in ENRICHED},
        }


def parse_payload(text):
    """A payload column as the oracle compares it: numbers exact."""
    return json.loads(text, parse_float=Decimal)


def verdict(raw, window):
    """An `Event`, or the `Rejected` code for the record's bytes. `window`:
    (now in Unix seconds, max age in days or None, max future days or None)."""
    try:
        return _event(raw, window)
    except Rejected as rejected:
        return rejected


def _event(raw, window):
    if len(raw) > MAX_RECORD_BYTES:
        raise Rejected("record_too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("invalid_utf8") from None
    if text.startswith("\ufeff"):
        raise Rejected("byte_order_mark")
    if not text.strip(" \t\r\n"):
        raise Rejected("empty")
    try:
        value = json.loads(text, object_pairs_hook=_unique_object, parse_float=Decimal,
                           parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise Rejected("invalid_json") from None
    if _depth(value) > MAX_DEPTH:
        raise Rejected("too_deeply_nested")
    if _has_lone_surrogate(value):
        raise Rejected("lone_surrogate")
    if not isinstance(value, dict):
        raise Rejected("not_an_object")
    for field in ("event_uuid", "event_name", "created_at"):
        if field not in value:
            raise Rejected("missing_field")
    uuid, name, created_at = value["event_uuid"], value["event_name"], value["created_at"]
    if not isinstance(uuid, str) or not isinstance(name, str):
        raise Rejected("wrong_type")
    if not UUID_FORMS.fullmatch(uuid):
        raise Rejected("invalid_uuid")
    event_type = name.split(":")[0]
    if not EVENT_TYPE.fullmatch(event_type) or event_type.upper() == "__HIVE_DEFAULT_PARTITION__":
        raise Rejected("invalid_event_type")
    if isinstance(created_at, bool) or not isinstance(created_at, (int, Decimal)):
        raise Rejected("wrong_type")
    created_at = Decimal(created_at)
    if created_at < 0:
        raise Rejected("negative_created_at")
    if created_at >= YEAR_10000:
        raise Rejected("created_at_out_of_range")
    now, max_age_days, max_future_days = window
    if max_age_days is not None and created_at < now - max_age_days * 86400:
        raise Rejected("created_at_implausible")
    if max_future_days is not None and created_at > now + max_future_days * 86400:
        raise Rejected("created_at_implausible")
    hexdigits = re.sub("[^0-9a-fA-F]", "", uuid.removeprefix("urn:uuid:")).lower()
    canonical = "-".join((hexdigits[:8], hexdigits[8:12], hexdigits[12:16], hexdigits[16:20], hexdigits[20:]))
    return Event(value, canonical, created_at)
