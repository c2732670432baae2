#!/usr/bin/env python3
"""Ingest benchmark: eventlake ingest against DuckDB and pyarrow doing the same job.

All read the same generated NDJSON (no invalid lines, which pyarrow cannot skip)
and write a ZSTD Parquet dataset partitioned by event_type and created_date:
- DuckDB, on every core: read_ndjson_objects, the derived columns, a dedupe on
  (event_uuid, created_at) and COPY ... PARTITION_BY. It does less than eventlake:
  no validation, the whole object as the payload, no order kept.
- pyarrow: read_json + write_dataset. It does less still: only the contract
  columns (no payload column), neither validates nor dedupes.
Each runs in its own process; the figures are wall time, CPU time and peak RSS.
eventlake runs twice: as it is, and with --no-views (no typed views kept
current), the difference being what the views cost ingest (goal: 10% at most).
With --flat, eventlake ingest runs instead on the input and on ten times as much
(no comparison), to show its peak memory does not grow with it.
Usage: ingest.py EVENTLAKE_BINARY [MEGABYTES] [--flat]
"""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

PYARROW = r"""
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds, pyarrow.json as pj
schema = pa.schema([("event_uuid", pa.string()), ("event_name", pa.string()), ("created_at", pa.float64())])
table = pj.read_json(sys.argv[1], parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
event_type = pc.list_element(pc.split_pattern(table["event_name"], ":"), 0)
created = pc.cast(pc.multiply(table["created_at"], 1000), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
table = table.append_column("event_type", event_type).append_column("created_date", pc.strftime(created, "%Y-%m-%d"))
ds.write_dataset(table, sys.argv[2], format="parquet", partitioning=["event_type", "created_date"],
                 partitioning_flavor="hive", existing_data_behavior="overwrite_or_ignore",
                 max_partitions=100000, file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"))
"""

DUCKDB = r"""
import os, sys
import duckdb
connection = duckdb.connect()
connection.sql(f"SET threads = {os.cpu_count()}")
connection.sql(f'''
COPY (
    WITH parsed AS (
        SELECT json->>'event_uuid' AS event_uuid, json->>'event_name' AS event_name,
               CAST(json->>'created_at' AS DOUBLE) AS created_at, json AS payload
        FROM read_ndjson_objects('{sys.argv[1]}')
    ), enriched AS (
        SELECT *, split_part(event_name, ':', 1) AS event_type,
               nullif(split_part(event_name, ':', 2), '') AS event_subtype,
               strftime(to_timestamp(created_at), '%Y-%m-%dT%H:%M:%S.%gZ') AS created_datetime,
               strftime(to_timestamp(created_at), '%Y-%m-%d') AS created_date
        FROM parsed
    )
    SELECT * EXCLUDE (copy) FROM (
        SELECT *, row_number() OVER (PARTITION BY lower(event_uuid), round(created_at * 1000)) AS copy
        FROM enriched
    ) WHERE copy = 1
) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_type, created_date))
''')
"""


def measure(command):
    """Runs command in a fresh process; returns (seconds, CPU seconds, peak RSS in MiB)."""
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: fork a reaper per run.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        os.write(write, f"{seconds} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss / 1024}".encode())
        os._exit(0)
    os.close(write)
    result = os.read(read, 100).decode().split()
    os.waitpid(pid, 0)
    return tuple(float(figure) for figure in result)


def generate(eventlake, path, megabytes):
    count = megabytes * 1024 * 1024 // 345
    with open(path, "wb") as out:
        subprocess.run([eventlake, "generate", "--events", str(count), "--days", "7", "--invalid", "0"], stdout=out, check=True)
    return count, os.path.getsize(path) / 2**20


def report(name, figures, size):
    seconds, cpu, peak = figures
    print(f"{name:36} {seconds:7.2f} s  {size / seconds:7.1f} MiB/s  CPU {cpu:7.2f} s  peak RSS {peak:7.0f} MiB")


def main():
    args = [arg for arg in sys.argv[1:] if arg != "--flat"]
    eventlake = os.path.abspath(args[0])
    megabytes = int(args[1]) if len(args) > 1 else 1024
    work = tempfile.mkdtemp(prefix="eventlake-bench-")
    try:
        events = os.path.join(work, "events.ndjson")
        count, size = generate(eventlake, events, megabytes)
        print(f"input: {size:.0f} MiB, {count:,} events, 100 types x 7 days; {os.cpu_count()} cores")
        ours = measure([eventlake, "ingest", "--quiet", "--lake", os.path.join(work, "lake"), events])
        report("eventlake ingest", ours, size)
        if "--flat" not in sys.argv:
            shutil.rmtree(os.path.join(work, "lake"))
            bare = measure([eventlake, "ingest", "--quiet", "--no-views", "--lake", os.path.join(work, "lake"), events])
            report("eventlake ingest --no-views", bare, size)
            print(f"keeping the typed views current costs ingest {100 * (ours[0] / bare[0] - 1):+.1f}% wall time, "
                  f"{100 * (ours[1] / bare[1] - 1):+.1f}% CPU time")
            duck = measure([sys.executable, "-c", DUCKDB, events, os.path.join(work, "duckdb")])
            arrow = measure([sys.executable, "-c", PYARROW, events, os.path.join(work, "pyarrow")])
            report("DuckDB COPY ... PARTITION_BY", duck, size)
            report("pyarrow read_json + write_dataset", arrow, size)
            print(f"against DuckDB: {duck[0] / ours[0]:.2f}x its speed at {ours[2] / duck[2]:.2f}x its memory; "
                  f"against pyarrow: {arrow[0] / ours[0]:.2f}x at {ours[2] / arrow[2]:.2f}x")
        else:
            shutil.rmtree(os.path.join(work, "lake"))
            # Ten times the distinct events (not ten copies: the dedupe's memory
            # grows with distinct keys, which is what must stay bounded).
            _, big_size = generate(eventlake, events, megabytes * 10)
            big = measure([eventlake, "ingest", "--quiet", "--lake", os.path.join(work, "lake"), events])
            report("eventlake ingest, 10x the input", big, big_size)
            print(f"peak memory at 10x the input: {big[2] / ours[2]:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
