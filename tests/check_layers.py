#!/usr/bin/env python3
"""The module map in src/lib.rs, checked (`make lint`): each top-level module of
src/ uses only the modules of the crate it may use, the core contract uses no I/O,
Arrow or AWS crate, and the Lambda binaries do not use the command line.

usage: check_layers.py [SRC_DIR]
"""

import pathlib
import re
import sys

# Module -> the crate's modules it may use besides itself.
MAY_USE = {
    "core": set(),
    "telemetry": set(),
    "firehose": {"core", "telemetry"},
    "generate": {"core"},
    "producer": {"core"},
    "cost": {"producer"},
    "lake": {"core", "telemetry", "views"},
    "shards": set(),
    "aws": {"core", "lake", "producer", "shards"},
    "catalog": {"core", "aws", "lake"},
    "compaction": {"core", "telemetry", "lake", "aws", "catalog", "views"},
    "lambda": {"core", "telemetry", "firehose", "lake", "aws", "catalog", "compaction", "views"},
    # The typed views: their pure half (ladder, names, counts, schema files, SQL),
    # which the lake writer and compaction count fields with; and their shells
    # over a local lake and over S3 and Glue (views/local.rs, publish.rs, error.rs).
    "views": {"core"},
    "views_shells": {"core", "telemetry", "lake", "aws", "catalog", "compaction", "views"},
    "query": {"core", "lake", "views"},
    "replay": {"core", "telemetry", "producer", "lake", "aws", "catalog", "compaction", "views"},
    "tail": {"core", "producer", "aws", "shards", "query"},
    "console": {"core", "telemetry", "generate", "producer", "lake", "aws", "catalog", "shards", "tail", "compaction", "views", "replay", "query"},
    "cli": {"core", "shards", "tail", "console", "telemetry", "firehose", "generate", "cost", "producer", "lake", "aws", "catalog", "compaction", "lambda", "query", "views", "replay"},
}
# Crates and std modules the pure core must not touch.
CORE_FORBIDDEN = re.compile(r"\b(arrow|parquet|datafusion|aws_[a-z_]+|tokio|lambda_runtime)::|\bstd::(fs|net|process)\b")
LAMBDA_BINARIES = ("firehose-transform.rs", "parquet-writer.rs")
VIEWS_SHELLS = ("local.rs", "publish.rs", "error.rs")
CRATE_PATH = re.compile(r"\bcrate::([a-z_]+)")


def code(text):
    """The text without comments (line and doc comments; block comments are not used)."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def problems(src):
    found = []
    for path in sorted(src.rglob("*.rs")):
        relative = path.relative_to(src)
        if relative.parts[0] == "bin":
            if relative.name in LAMBDA_BINARIES and re.search(r"\beventlake::(cli|query)\b", code(path.read_text())):
                found.append(f"{relative}: a Lambda binary uses the command line or the query engine")
            continue
        if relative.name == "lib.rs":
            continue
        module = relative.parts[0].removesuffix(".rs")
        if module == "views" and relative.name in VIEWS_SHELLS:
            module = "views_shells"
        if module not in MAY_USE:
            found.append(f"{relative}: module {module} is not in the map (tests/check_layers.py, src/lib.rs)")
            continue
        text = code(path.read_text())
        own = "views" if module == "views_shells" else module
        for used in sorted(set(CRATE_PATH.findall(text)) - {own}):
            if used not in MAY_USE[module]:
                found.append(f"{relative}: {module} may not use crate::{used}")
        if module == "core" and (match := CORE_FORBIDDEN.search(text)):
            found.append(f"{relative}: the core contract may not use {match.group(0)}")
    return found


def main():
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    found = problems(src)
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"layers: every module of {src}/ uses only what the map allows")


if __name__ == "__main__":
    main()
