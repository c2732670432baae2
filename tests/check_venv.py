#!/usr/bin/env python3
"""The Python tools are locked: every requirement pinned, every venv equal to its lock.

    check_venv.py --pins FILE...     every requirement line of FILE is `name==version`
                                     (a lock's lines also carry hashes)
    check_venv.py --venv LOCK        run by a venv's python: the distributions installed
                                     in it are exactly LOCK's, at LOCK's versions

make lint runs both (the second for each venv the Makefile installs), so a requirement
that floats or a venv that drifted from its lock (a hand `pip install`, a cache of an
older lock) stops the build. A venv brings pip and setuptools of its own; they are
allowed when the lock does not name them.
"""

import re
import sys
from dataclasses import dataclass

# A requirement line: name, optional extras, then its specifier and marker.
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?P<rest>.*)$")
PINNED = re.compile(r"^==\s*(?P<version>[A-Za-z0-9.+!_-]+)\s*(?:;\s*(?P<marker>.+?))?\s*$")
# What `python -m venv` installs by itself.
VENV_OWN = {"pip", "setuptools"}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str | None
    hashes: int


def normalized(name):
    """PEP 503's name: `PyYAML`, `pyyaml` and `py_yaml` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text):
    """The requirement lines of a file, continuations joined, comments dropped, with
    the number of each line's first physical line."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            yield start, joined


def pins(text, where, need_hashes):
    """Every requirement of a file as a Pin; a line that is not `name==version` (with
    at least one `--hash` where need_hashes) is an error naming the line."""
    found, errors = [], []
    for number, line in logical_lines(text):
        body, *options = line.split(" --")
        hashes = sum(1 for option in options if option.startswith("hash="))
        requirement = REQUIREMENT.match(body.strip())
        pinned = requirement and PINNED.match(requirement["rest"])
        if body.strip().startswith("-") or not pinned:
            errors.append(f"{where}:{number}: not pinned with ==: {line}")
        elif need_hashes and hashes == 0:
            errors.append(f"{where}:{number}: no --hash: {body.strip()}")
        else:
            found.append(Pin(normalized(requirement["name"]), pinned["version"], pinned["marker"], hashes))
    return found, errors


def drift(locked, installed, applies):
    """What differs between a lock's pins and a venv's {name: version}: packages
    missing, at another version, or installed without being locked. `applies` says
    whether a pin's marker holds in the venv."""
    wanted = {pin.name: pin.version for pin in locked if pin.marker is None or applies(pin.marker)}
    problems = []
    for name, version in sorted(wanted.items()):
        if name not in installed:
            problems.append(f"{name}=={version} is locked but not installed")
        elif installed[name] != version:
            problems.append(f"{name} is {installed[name]}, the lock says {version}")
    for name in sorted(set(installed) - set(wanted) - VENV_OWN):
        problems.append(f"{name}=={installed[name]} is installed but not in the lock")
    return problems


def installed_here():
    from importlib import metadata

    return {normalized(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def marker_holds_here(marker):
    # pip's own copy of `packaging`: every venv has pip, not every lock has packaging.
    from pip._vendor.packaging.markers import Marker

    return Marker(marker).evaluate()


def main(argv):
    if len(argv) >= 2 and argv[0] == "--pins":
        errors = []
        for path in argv[1:]:
            with open(path, encoding="utf-8") as file:
                errors += pins(file.read(), path, need_hashes=not path.endswith(".in"))[1]
        for error in errors:
            print(error, file=sys.stderr)
        return 1 if errors else 0
    if len(argv) == 2 and argv[0] == "--venv":
        lock = argv[1]
        with open(lock, encoding="utf-8") as file:
            locked, errors = pins(file.read(), lock, need_hashes=True)
        problems = errors + drift(locked, installed_here(), marker_holds_here)
        for problem in problems:
            print(f"{sys.prefix} drifted from {lock}: {problem}", file=sys.stderr)
        if problems:
            print(f"Rebuild it from the lock: rm -rf {sys.prefix} && make tools", file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
