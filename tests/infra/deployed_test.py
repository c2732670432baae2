#!/usr/bin/env python3
"""The deployed stack, end to end, in a real AWS account (make smoke ENV=...).

    deployed_test.py EVENTLAKE TERRAFORM_DIR [--events N] [--timeout SECONDS]

Reads the stack's outputs (`terraform output -json`), generates N valid events
created now with a seed of this run (so their event_uuids are new), puts them to
the stream with `eventlake send`, then asks Athena, in the stack's workgroup, until
every one of them is in `events_unique` exactly once, in the partition of its
type and day. Fails with what is missing when the timeout passes (the default
covers the largest Firehose buffer the stack accepts, 900 s, plus the writer).

The credentials are the caller's (the deploy workflow's role, or your profile);
the region is AWS_REGION or the profile's. Nothing here runs against moto: the
emulator has no Firehose delivery loop (make test-infra covers that path with its
stand-ins); this is the check that the account itself works.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3


def outputs(terraform_dir):
    result = subprocess.run(
        ["terraform", f"-chdir={terraform_dir}", "output", "-json"], capture_output=True, text=True, check=True
    )
    return {name: value["value"] for name, value in json.loads(result.stdout).items()}


def sent_events(eventlake, count, seed, path):
    """N valid events created today, none repeated: {event_uuid: (event_type, created_date)}."""
    with open(path, "wb") as out:
        subprocess.run(
            [eventlake, "generate", "--events", str(count), "--seed", str(seed), "--start", "today",
             "--duplicates", "0", "--invalid", "0"],
            stdout=out, check=True,
        )
    expected = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            event_type = event["event_name"].split(":")[0]
            day = time.strftime("%Y-%m-%d", time.gmtime(event["created_at"]))
            expected[event["event_uuid"]] = (event_type, day)
    return expected


def athena_rows(athena, workgroup, database, sql, deadline):
    started = athena.start_query_execution(
        QueryString=sql, WorkGroup=workgroup, QueryExecutionContext={"Database": database}
    )["QueryExecutionId"]
    while True:
        status = athena.get_query_execution(QueryExecutionId=started)["QueryExecution"]["Status"]
        if status["State"] == "SUCCEEDED":
            break
        if status["State"] in ("FAILED", "CANCELLED"):
            raise AssertionError(f"Athena query {status['State']}: {status.get('StateChangeReason')}\n{sql}")
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=started)
            raise AssertionError("Athena query still running at the deadline")
        time.sleep(2)
    rows = []
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=started):
        for row in page["ResultSet"]["Rows"]:
            rows.append([cell.get("VarCharValue") for cell in row["Data"]])
    return rows[1:]  # the first row holds the column names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eventlake")
    parser.add_argument("terraform_dir")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--timeout", type=int, default=1500)
    args = parser.parse_args()

    stack = outputs(args.terraform_dir)
    seed = time.time_ns() % (2**63)
    work = tempfile.mkdtemp(prefix="eventlake-smoke-")
    events_path = os.path.join(work, "events.ndjson")
    expected = sent_events(args.eventlake, args.events, seed, events_path)
    print(f"sending {len(expected)} events (seed {seed}) to {stack['stream_name']}")
    subprocess.run(
        [args.eventlake, "send", "--stream", stack["stream_name"], "--quiet",
         "--failed", os.path.join(work, "failed.ndjson"), events_path],
        check=True,
    )

    athena = boto3.client("athena")
    uuids = ", ".join(f"'{uuid}'" for uuid in sorted(expected))
    days = ", ".join(f"'{day}'" for day in sorted({day for _, day in expected.values()}))
    sql = (
        "SELECT event_uuid, event_type, created_date, count(*) OVER (PARTITION BY event_uuid) AS copies "
        f"FROM events_unique WHERE created_date IN ({days}) AND event_uuid IN ({uuids})"
    )
    deadline = time.monotonic() + args.timeout
    while True:
        rows = athena_rows(athena, stack["athena_workgroup"], stack["glue_database"], sql, deadline)
        found = {uuid: (event_type, day) for uuid, event_type, day, _ in rows}
        twice = sorted(uuid for uuid, _, _, copies in rows if copies != "1")
        if twice:
            raise AssertionError(f"{len(twice)} events more than once in events_unique, e.g. {twice[:3]}")
        misplaced = sorted(uuid for uuid, place in found.items() if expected.get(uuid) != place)
        if misplaced:
            raise AssertionError(f"{len(misplaced)} events in the wrong partition, e.g. {misplaced[:3]}")
        missing = len(expected) - len(found)
        print(f"{len(found)} of {len(expected)} events in Athena")
        if missing == 0:
            print("the deployed stack delivered every event once, in its partition")
            return 0
        if time.monotonic() > deadline:
            raise AssertionError(f"{missing} events not in Athena after {args.timeout} s")
        time.sleep(30)


if __name__ == "__main__":
    sys.exit(main())
