"""No internal tracker numbers in the code, its tests and benchmarks: a reader has no
tracker; the code says what it does and why (the README and docs have their own test)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACKER = re.compile(r"\bissues? ?#?\d+\b|\(#\d{1,4}\)", re.IGNORECASE)


def test_no_tracker_numbers_in_code_tests_or_benchmarks() -> None:
    found = []
    for folder in ("creevey_dask", "tests", "benchmarks", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == Path(__file__).name:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if TRACKER.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
