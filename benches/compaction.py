#!/usr/bin/env python3
"""Compaction benchmark: a generated month of events written the way the deployed
writer writes it (one ingest run per 5-minute Firehose flush, so one small file per
type and flush), then `eventlake compact`. Prints files per partition-day, the
compaction's time, throughput and peak RSS, one ingest of the same events for
comparison, and query times over a day and over the month before and after, with
DuckDB (in-process) and `eventlake query` (a whole process).

usage: compaction.py EVENTLAKE [--days 30] [--types 20] [--events-per-day 100000]
                     [--flushes-per-day 288] [--query-binary EVENTLAKE_WITH_QUERY]

EVENTLAKE runs generate, ingest and compact (a release build without the query
engine is fine); --query-binary is a build with it (default: EVENTLAKE).
"""
import argparse
import collections
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import duckdb

sys.path.insert(0, os.path.dirname(__file__))
from ingest import measure  # noqa: E402 (the same fork-and-wait measurement)

DAY_SQL = ("SELECT event_type, count(*) AS n, count(DISTINCT event_uuid) AS users, max(created_datetime) AS last "
           "FROM events WHERE created_date = '{day}' GROUP BY event_type ORDER BY event_type")
MONTH_SQL = "SELECT event_type, created_date, count(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2"


def write_flushes(eventlake, args, work):
    """The month's events, one NDJSON file per flush window; 1% of each window's
    events sent again in the next (a producer retry that reaches another flush)."""
    start = datetime.date(2024, 3, 1)
    generated = subprocess.run(
        [eventlake, "generate", "--events", str(args.events_per_day * args.days), "--types", str(args.types),
         "--start", start.isoformat(), "--days", str(args.days), "--seed", "5", "--duplicates", "0",
         "--invalid", "0"],
        check=True, capture_output=True).stdout
    epoch = datetime.datetime.combine(start, datetime.time(), datetime.timezone.utc).timestamp()
    window = 86400 / args.flushes_per_day
    windows = collections.defaultdict(list)
    for line in generated.splitlines():
        created = json.loads(line).get("created_at")
        if isinstance(created, (int, float)):
            windows[int((created - epoch) // window)].append(line)
    month = os.path.join(work, "month.ndjson")
    with open(month, "wb") as f:
        f.write(generated)
    paths, previous = [], []
    for index in sorted(windows):
        lines = windows[index] + previous[::100]
        path = os.path.join(work, "flushes", f"{index:06d}.ndjson")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        paths.append(path)
        previous = windows[index]
    return month, paths


def lake_files(lake):
    per_partition = collections.Counter()
    total_bytes = 0
    for directory, _, names in os.walk(os.path.join(lake, "events")):
        parquet = [n for n in names if n.endswith(".parquet")]
        if parquet:
            per_partition[directory] = len(parquet)
            total_bytes += sum(os.path.getsize(os.path.join(directory, n)) for n in parquet)
    return per_partition, total_bytes


def duckdb_seconds(lake, sql):
    connection = duckdb.connect()
    connection.sql(f"CREATE VIEW events AS SELECT * FROM read_parquet('{lake}/events/*/*/*.parquet', "
                   f"hive_partitioning = true, hive_types_autocast = false, union_by_name = true)")
    start = time.perf_counter()
    connection.sql(sql).fetchall()
    return time.perf_counter() - start


def query_seconds(binary, lake, sql):
    start = time.perf_counter()
    subprocess.run([binary, "query", "--lake", lake, "--format", "csv", sql], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def queries(label, args, lake, day):
    figures = {}
    for name, sql in (("day", DAY_SQL.format(day=day)), ("month", MONTH_SQL)):
        figures[name] = (duckdb_seconds(lake, sql), query_seconds(args.query_binary, lake, sql))
        print(f"  {label} {name:5} query: DuckDB {figures[name][0]:.2f} s, eventlake query {figures[name][1]:.2f} s")
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("eventlake")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--types", type=int, default=20)
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument("--flushes-per-day", type=int, default=288)
    parser.add_argument("--query-binary")
    args = parser.parse_args()
    args.query_binary = args.query_binary or args.eventlake
    work = tempfile.mkdtemp(prefix="eventlake-bench-compaction-")
    try:
        month, flushes = write_flushes(args.eventlake, args, work)
        lake = os.path.join(work, "lake")
        start = time.perf_counter()
        for path in flushes:
            subprocess.run([args.eventlake, "ingest", "--quiet", "--lake", lake, path], check=True,
                           stdout=subprocess.DEVNULL)
        print(f"{args.days} days, {args.types} types, {args.events_per_day:,} events a day in "
              f"{len(flushes)} ingest runs (one per flush): {time.perf_counter() - start:.0f} s")

        one_run = os.path.join(work, "one-run")
        ingest_seconds, ingest_rss = measure([args.eventlake, "ingest", "--quiet", "--lake", one_run, month])
        month_mib = os.path.getsize(month) / 2**20
        _, one_run_bytes = lake_files(one_run)
        shutil.rmtree(one_run)

        before, bytes_before = lake_files(lake)
        day = "2024-03-15"
        print(f"before: {sum(before.values()):,} files ({bytes_before / 2**20:.0f} MiB) in {len(before)} "
              f"partition-days, {sum(before.values()) / len(before):.0f} per partition-day on average, "
              f"{max(before.values())} at most")
        before_queries = queries("before", args, lake, day)

        seconds, rss = measure([args.eventlake, "compact", "--lake", lake, "--older-than", "0s"])
        after, bytes_after = lake_files(lake)
        print(f"compaction: {seconds:.1f} s, {bytes_before / 2**20 / seconds:.1f} MiB/s of Parquet in, "
              f"peak RSS {rss:.0f} MiB; after: {sum(after.values()):,} files ({bytes_after / 2**20:.0f} MiB), "
              f"{max(after.values())} per partition-day at most")
        print(f"one ingest of the month's {month_mib:.0f} MiB of NDJSON: {ingest_seconds:.1f} s, "
              f"{month_mib / ingest_seconds:.1f} MiB/s of NDJSON, {one_run_bytes / 2**20 / ingest_seconds:.1f} "
              f"MiB/s of Parquet out, peak RSS {ingest_rss:.0f} MiB")
        after_queries = queries("after", args, lake, day)
        for name in ("day", "month"):
            (d0, e0), (d1, e1) = before_queries[name], after_queries[name]
            print(f"{name} query speed-up: DuckDB {d0 / d1:.1f}x, eventlake query {e0 / e1:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
