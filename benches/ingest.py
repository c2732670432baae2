#!/usr/bin/env python3
"""Ingest benchmark: eventlake ingest against pyarrow's read_json + write_dataset.

Both read the same generated NDJSON (no invalid lines, which pyarrow cannot skip)
and write a Parquet dataset partitioned by event_type and created_date. pyarrow
does less work: it keeps only the contract columns (no payload column), and
neither validates nor dedupes. Each runs in its own process; the figures are wall
time and peak RSS. Usage: ingest.py EVENTLAKE_BINARY [MEGABYTES]
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


def measure(command):
    """Runs command in a fresh process; returns (seconds, peak RSS in MiB)."""
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: fork a reaper per run.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        os.write(write, f"{seconds} {peak}".encode())
        os._exit(0)
    os.close(write)
    result = os.read(read, 100).decode().split()
    os.waitpid(pid, 0)
    return float(result[0]), float(result[1])


def main():
    eventlake = os.path.abspath(sys.argv[1])
    megabytes = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    work = tempfile.mkdtemp(prefix="eventlake-bench-")
    try:
        events = os.path.join(work, "events.ndjson")
        count = megabytes * 1024 * 1024 // 345
        with open(events, "wb") as out:
            subprocess.run([eventlake, "generate", "--events", str(count), "--days", "7", "--invalid", "0"], stdout=out, check=True)
        size = os.path.getsize(events) / 2**20
        print(f"input: {size:.0f} MiB, {count:,} events, 100 types x 7 days")
        ours = measure([eventlake, "ingest", "--quiet", "--lake", os.path.join(work, "lake"), events])
        theirs = measure([sys.executable, "-c", PYARROW, events, os.path.join(work, "pyarrow")])
        for name, (seconds, peak) in [("eventlake ingest", ours), ("pyarrow read_json + write_dataset", theirs)]:
            print(f"{name:36} {seconds:7.2f} s  {size / seconds:7.1f} MiB/s  peak RSS {peak:7.0f} MiB")
        print(f"speed-up: {theirs[0] / ours[0]:.2f}x, memory: {ours[1] / theirs[1]:.2f}x of pyarrow's")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
