#!/usr/bin/env python3
"""Query benchmark: every ready query in athena/queries/, eventlake against DuckDB.

Generates EVENTS events over the last 7 days (so every query's date filter finds
data), ingests them with `eventlake ingest`, then runs each query file:
- `eventlake query --lake LAKE --format csv SQL`, timed as a whole process
  (start-up, listing the lake, planning, running, printing);
- DuckDB in-process on the same Parquet files, the query translated from Athena's
  dialect by sqlglot, timed from the SQL to the fetched rows.
Each is run REPEAT times and the fastest run counts (the files are in the page
cache for both). Row counts are printed side by side as a sanity check; equality
of results is the tests' job (tests/it/queries.rs against its oracle).

Then the typed views (benches/typed/): each question written on a typed view
(`<name>.typed.sql`) and by hand with json_extract_scalar over events_unique
(`<name>.sql`): eventlake on the typed view, eventlake on the hand-written
query, and DuckDB on the hand-written query (DuckDB has no typed views; that is
the work they save). The goal: the typed view within 1.2x of DuckDB.

Usage: query.py EVENTLAKE_BINARY [--events N] [--repeat R] [--lake DIR]
With --lake DIR, the lake there is used if it exists and written there if not.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

import duckdb
import sqlglot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_lake(eventlake, events, lake):
    work = tempfile.mkdtemp(prefix="eventlake-bench-query-")
    try:
        source = os.path.join(work, "events.ndjson")
        with open(source, "wb") as out:
            subprocess.run([eventlake, "generate", "--events", str(events), "--start", "today-6", "--days", "7"],
                           stdout=out, check=True)
        subprocess.run([eventlake, "ingest", "--quiet", "--lake", lake, source], check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def duckdb_connection(lake):
    """The lake as DuckDB sees it: `events` over the Parquet files (partition
    columns as text, as in Glue) and `events_unique` from Athena's own view file,
    its "$path" read as DuckDB's filename column."""
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    connection.sql(f"CREATE VIEW events AS SELECT * FROM read_parquet('{lake}/events/*/*/*.parquet', "
                   "hive_partitioning = true, hive_types_autocast = false, union_by_name = true, filename = true)")
    view = open(os.path.join(REPO, "athena/ddl/events_unique.sql")).read().replace('"$path"', "filename")
    connection.sql(for_duckdb(view))
    return connection


def for_duckdb(sql):
    """Athena's SQL in DuckDB's dialect. sqlglot casts `current_date - INTERVAL`
    (a timestamp in DuckDB) straight to text, '2024-03-17 00:00:00', which no
    created_date equals: it is made a date first, as in Athena."""
    translated = sqlglot.transpile(sql, read="athena", write="duckdb")[0]
    return re.sub(r"CAST\((CURRENT_DATE - INTERVAL '\d+' DAY) AS TEXT\)", r"CAST(CAST(\1 AS DATE) AS TEXT)", translated)


def fastest(repeat, run):
    best, rows = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        rows = run()
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return best, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eventlake")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lake")
    args = parser.parse_args()
    eventlake = os.path.abspath(args.eventlake)
    work = None if args.lake else tempfile.mkdtemp(prefix="eventlake-bench-lake-")
    lake = os.path.abspath(args.lake or os.path.join(work, "lake"))
    try:
        if not os.path.isdir(os.path.join(lake, "events")):
            start = time.perf_counter()
            write_lake(eventlake, args.events, lake)
            print(f"lake: {args.events:,} events over 7 days, written in {time.perf_counter() - start:.1f} s")
        files = glob.glob(f"{lake}/events/*/*/*.parquet")
        size = sum(os.path.getsize(f) for f in files) / 2**20
        print(f"lake: {len(files)} Parquet files, {size:.0f} MiB; fastest of {args.repeat} runs each; "
              f"{os.cpu_count()} cores")
        connection = duckdb_connection(lake)
        print(f"{'query':26} {'eventlake':>10} {'DuckDB':>10} {'ratio':>7} {'rows':>11}")
        total_ours = total_theirs = 0.0
        for path in sorted(glob.glob(os.path.join(REPO, "athena/queries/*.sql"))):
            sql = open(path).read()
            ours, output = fastest(args.repeat, lambda: subprocess.run(
                [eventlake, "query", "--lake", lake, "--format", "csv", sql],
                check=True, capture_output=True).stdout.decode().splitlines()[1:])
            translated = for_duckdb(sql)
            theirs, rows = fastest(args.repeat, lambda: connection.sql(translated).fetchall())
            total_ours += ours
            total_theirs += theirs
            name = os.path.basename(path)[:-4]
            print(f"{name:26} {ours:9.3f}s {theirs:9.3f}s {ours / theirs:6.2f}x {len(output):>5}/{len(rows):<5}")
        print(f"{'total':26} {total_ours:9.3f}s {total_theirs:9.3f}s {total_ours / total_theirs:6.2f}x")
        subprocess.run([eventlake, "views", "--lake", lake], check=True, stdout=subprocess.DEVNULL)
        print()
        print(f"{'typed view':26} {'view':>10} {'by hand':>10} {'DuckDB':>10} {'view/DuckDB':>12} {'rows':>11}")
        for path in sorted(glob.glob(os.path.join(REPO, "benches/typed/*.typed.sql"))):
            name = os.path.basename(path)[: -len(".typed.sql")]
            typed = open(path).read()
            by_hand = open(path.replace(".typed.sql", ".sql")).read()

            def ours_on(sql):
                return lambda: subprocess.run([eventlake, "query", "--lake", lake, "--format", "csv", sql],
                                              check=True, capture_output=True).stdout.decode().splitlines()[1:]

            view, view_rows = fastest(args.repeat, ours_on(typed))
            hand, _ = fastest(args.repeat, ours_on(by_hand))
            translated = for_duckdb(by_hand)
            theirs, rows = fastest(args.repeat, lambda: connection.sql(translated).fetchall())
            print(f"{name:26} {view:9.3f}s {hand:9.3f}s {theirs:9.3f}s {view / theirs:11.2f}x "
                  f"{len(view_rows):>5}/{len(rows):<5}")
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
