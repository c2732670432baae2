#!/usr/bin/env python3
"""`make run` and `make test` share one build of the dependencies (`make lint`).

`make run` builds `eventlake` alone; `make test` builds every target, with the
dev-dependencies. Cargo turns on, in a crate both builds use, every feature that
any of its dependents asks for, so a dev-dependency that asks for one more feature
makes `make test` build that crate again, and every crate above it: once
DataFusion and the AWS SDK (about 40 crates, two minutes on 2 cores). This
compares the features of each crate in the two dependency graphs and names the
ones that differ; the fix is to ask for those features in `[dependencies]` too.

usage: check_one_build.py [MANIFEST_DIR]
"""

import subprocess
import sys


def features_by_crate(manifest_dir, edges):
    """{"name vX.Y.Z": "feature,feature"} of every crate in the graph of `edges`."""
    listing = subprocess.run(
        ["cargo", "tree", "--quiet", "--edges", edges, "--prefix", "none", "--format", "{p}|{f}"],
        cwd=manifest_dir, check=True, capture_output=True, text=True,
    ).stdout
    crates = {}
    for line in listing.splitlines():
        package, _, features = line.removesuffix(" (*)").partition("|")
        crates[package.split(" (")[0]] = features
    return crates


def differences(run_build, test_build):
    return [
        f"{crate}: make run builds it with [{run_build[crate]}], make test with [{test_build[crate]}]"
        for crate in sorted(run_build.keys() & test_build.keys())
        if run_build[crate] != test_build[crate]
    ]


def main():
    manifest_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    found = differences(features_by_crate(manifest_dir, "normal"), features_by_crate(manifest_dir, "normal,dev"))
    for difference in found:
        print(difference, file=sys.stderr)
    if found:
        print("the dev-dependencies turn on more features: ask for them in [dependencies] too, "
              "or make test builds these crates and everything above them again", file=sys.stderr)
        sys.exit(1)
    print("one build: make run and make test build every shared crate with the same features")


if __name__ == "__main__":
    main()
