#!/usr/bin/env python3
"""Baseline: a plain Python Firehose transformation Lambda doing the same work.

What a typical hand-written handler does: base64-decode, json.loads, check the
three fields, enrich, dedupe within the batch, json.dumps, base64-encode. It is
looser than eventlake (floats lose digits, no UUID forms, no lone-surrogate check),
so the comparison flatters Python. Usage: python_transform.py REQUEST.json [RUNS]
"""
import base64
import json
import re
import sys
import time
import uuid
from datetime import datetime, timezone

TYPE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def transform(record):
    event = json.loads(base64.b64decode(record["data"]))
    event_uuid = str(uuid.UUID(event["event_uuid"]))
    name = event["event_name"]
    parts = name.split(":")
    if not TYPE.fullmatch(parts[0]):
        raise ValueError("bad event type")
    created_at = event["created_at"]
    if not isinstance(created_at, (int, float)) or not 0 <= created_at < 253402300800:
        raise ValueError("bad created_at")
    moment = datetime.fromtimestamp(round(created_at * 1000) / 1000, tz=timezone.utc)
    whole = float(created_at).is_integer()
    event["event_uuid"] = event_uuid
    event["created_datetime"] = moment.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if whole else f".{moment.microsecond // 1000:03d}Z")
    event["event_type"] = parts[0]
    event["event_subtype"] = parts[1] if len(parts) > 1 and parts[1] else None
    key = (event_uuid, round(created_at * 1000))
    line = (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    keys = {"event_type": parts[0], "created_date": moment.strftime("%Y-%m-%d")}
    return key, line, keys


def handler(request):
    seen, out = set(), []
    for record in request["records"]:
        try:
            key, line, keys = transform(record)
        except Exception:
            out.append({"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]})
            continue
        if key in seen:
            out.append({"recordId": record["recordId"], "result": "Dropped", "data": record["data"]})
            continue
        seen.add(key)
        data = base64.b64encode(line).decode()
        out.append({"recordId": record["recordId"], "result": "Ok", "data": data, "metadata": {"partitionKeys": keys}})
    return {"records": out}


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        json.dumps(handler(json.loads(text)))
        best = min(best, time.perf_counter() - start)
    print(f"python baseline: {len(text) / 1e6:.2f} MB request in {best * 1000:.1f} ms = {len(text) / 1e6 / best:.1f} MB/s (best of {runs})")


if __name__ == "__main__":
    main()
