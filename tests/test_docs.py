"""Every Python block of the pages under docs/ runs as written, in order, per page.

The blocks of one page share a namespace and run in a temporary working folder; the
block extractor (and its skip marker) is the README's (:mod:`tests.test_readme`).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.test_readme import python_blocks

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def test_there_are_pages() -> None:
    assert [p.name for p in PAGES if p.name == "security.md"] == ["security.md"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_python_blocks_of_a_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code, reason in python_blocks(page.read_text(encoding="utf-8")):
        if reason is not None:
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        if page.name == "security.md":
            assert out.getvalue().splitlines() == [
                "https://***@example.com/a.jpg?w=2&token=***",
                "True",
            ]
