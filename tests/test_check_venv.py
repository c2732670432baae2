"""tests/check_venv.py refuses floating requirements and drifted venvs (make lint)."""

import unittest

from check_venv import drift, pins

LOCK = """\
# a header
boto3==1.44.13 \\
    --hash=sha256:aa \\
    --hash=sha256:bb
    # via -r requirements-test.in
pywin32==312 ; sys_platform == 'win32' \\
    --hash=sha256:cc
py-yaml==6.0.4 \\
    --hash=sha256:dd
"""


def on_linux(marker):
    """The lock's only marker here is Windows's."""
    return False


class PinsTest(unittest.TestCase):
    def test_a_lock_reads_as_its_pins(self):
        found, errors = pins(LOCK, "lock", need_hashes=True)
        self.assertEqual(errors, [])
        self.assertEqual([(p.name, p.version, p.hashes) for p in found],
                         [("boto3", "1.44.13", 2), ("pywin32", "312", 1), ("py-yaml", "6.0.4", 1)])
        self.assertEqual(found[1].marker, "sys_platform == 'win32'")

    def test_a_line_without_an_exact_pin_is_refused(self):
        for line in ["boto3", "boto3>=1.44", "boto3~=1.44.0", "moto[server]", "-r other.txt", "boto3 == "]:
            _, errors = pins(line + "\n", "x.in", need_hashes=False)
            self.assertEqual(len(errors), 1, line)
            self.assertIn("x.in:1: not pinned with ==", errors[0])

    def test_extras_and_comments_are_allowed_in_an_input(self):
        found, errors = pins("# note\nmoto[server]==5.2.6  # why\n\n", "x.in", need_hashes=False)
        self.assertEqual(errors, [])
        self.assertEqual(found[0].name, "moto")

    def test_a_lock_line_without_a_hash_is_refused(self):
        _, errors = pins("duckdb==2.0.0\n", "x.txt", need_hashes=True)
        self.assertEqual(errors, ["x.txt:1: no --hash: duckdb==2.0.0"])


class DriftTest(unittest.TestCase):
    locked = pins(LOCK, "lock", need_hashes=True)[0]

    def test_the_venv_of_the_lock_passes(self):
        installed = {"boto3": "1.44.13", "py-yaml": "6.0.4", "pip": "23.2.1", "setuptools": "65.5.0"}
        self.assertEqual(drift(self.locked, installed, on_linux), [])

    def test_a_drifted_venv_is_refused(self):
        installed = {"boto3": "1.44.18", "requests": "2.34.2", "pip": "23.2.1"}
        self.assertEqual(drift(self.locked, installed, on_linux), [
            "boto3 is 1.44.18, the lock says 1.44.13",
            "py-yaml==6.0.4 is locked but not installed",
            "requests==2.34.2 is installed but not in the lock",
        ])

    def test_a_pin_whose_marker_holds_must_be_installed(self):
        installed = {"boto3": "1.44.13", "py-yaml": "6.0.4"}
        self.assertEqual(drift(self.locked, installed, lambda marker: True),
                         ["pywin32==312 is locked but not installed"])


if __name__ == "__main__":
    unittest.main()
