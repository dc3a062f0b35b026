"""Every Python block of each docs/*.md page runs as written, in order, in its own namespace.

The pages follow README.md's rules (see tests/test_readme.py, whose block extractor this
reuses): the blocks of one page share a namespace and run in a temporary working folder;
a block that cannot run here carries ``<!-- readme-test: skip (why) -->`` on the line
before its fence. Nothing leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from creevey_dask.testing import ImageServer
from tests.test_readme import python_blocks

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def _close(namespace: dict[str, Any]) -> None:
    """Stop what the blocks started: Clients (and their clusters), image servers."""
    if any(type(v).__name__ == "Client" for v in namespace.values()):
        from distributed import Client

        for value in namespace.values():
            if isinstance(value, Client):
                cluster = value.cluster
                value.close()
                if cluster is not None:
                    cluster.close()
    for value in namespace.values():
        if isinstance(value, ImageServer):
            value.stop()


def test_there_are_pages_to_run() -> None:
    assert PAGES, f"no pages in {DOCS}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_python_blocks_run_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"__docs_{page.stem}__"}
    try:
        for line, code, reason in blocks:
            if reason is None:
                # compiled with the page's line numbers, so a traceback points into it
                exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
    finally:
        _close(namespace)
    check = CHECKS.get(page.name)
    if check is not None:
        check(namespace)


def _duplicates_page(namespace: dict[str, Any]) -> None:
    """docs/duplicates.md: what its comments say happened."""
    groups, split, plain = namespace["groups"], namespace["split"], namespace["plain"]
    assert len(groups) == 20
    assert groups["dup_group"].nunique() == 12  # each planted copy found, nothing else
    copies = groups[groups["path"].str.startswith(("half_", "q60_"))]
    assert not copies["dup_keep"].any()  # the originals (the largest) are kept
    assert (split.groupby("dup_group")["split"].nunique() == 1).all()
    assert len(plain.creevey.leaks()) > 0
    assert (Path("groups.png")).exists()


CHECKS = {"duplicates.md": _duplicates_page}


def _shards_page(namespace: dict[str, Any]) -> None:
    """docs/shards.md: what its comments say happened."""
    res, retry = namespace["res"], namespace["retry"]
    assert (res["status"] == "error").sum() == 2
    assert (retry["status"] == "ok").all()
    latest, every = namespace["latest"], namespace["every"]
    assert len(latest) == 40
    assert len(every) == 42
    assert (latest["status"] == "ok").all()
    thumbs = namespace["thumbs"]
    assert (thumbs["status"] == "ok").all()
    assert thumbs["outpath"].str.endswith(".webp").all()
    assert namespace["data"][:2] == b"\xff\xd8"
    as_tars = namespace["as_tars"]
    assert (as_tars["status"] == "ok").sum() == 40
    assert as_tars["outpath"].value_counts().max() <= 25
    assert sorted(as_tars["key"]) == sorted(latest["key"])  # the keys are kept
    theirs = namespace["theirs"]
    assert theirs["status"].value_counts().to_dict() == {"ok": 4, "error": 1, "skipped": 0}
    assert namespace["mine"]["status"].value_counts()[["ok", "error"]].tolist() == [4, 1]
    assert namespace["manifest"]["split"].value_counts().to_dict() == {"train": 30, "valid": 10}
    assert Path("circles.png").exists()
    assert Path("tree", "manifest.csv").exists()


CHECKS["shards.md"] = _shards_page
