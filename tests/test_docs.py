"""Every Python block of each docs/*.md page runs as written, in order, in its own namespace.

The pages follow README.md's rules (see tests/test_readme.py, whose block extractor this
reuses): the blocks of one page share a namespace whose ``__name__`` is ``"__main__"``, as
a reader's script would be, and run in a temporary working folder; a block that cannot
run here carries ``<!-- readme-test: skip (why) -->`` on the line before its fence. A page
that names ``s3://bucket/`` gets a moto S3 server on 127.0.0.1 with that bucket, reached
through ``AWS_ENDPOINT_URL`` (inherited by the dask workers a page starts). Nothing leaves
the machine.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import pytest

from creevey_dask.storage import fs as storage
from creevey_dask.testing import ImageServer
from tests.test_readme import python_blocks

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))

#: Marks of a page: what it starts, and what it may leave behind that is not its own doing.
MARKS = {
    "clusters.md": [pytest.mark.cluster],  # starts a LocalCluster of worker processes
    # webdataset's own opener leaves each tar's stream to the garbage collector
    "shards.md": [
        pytest.mark.filterwarnings(
            r"ignore:Exception ignored in. <_io.FileIO name='shards/[^']*\.tar'"
            ":pytest.PytestUnraisableExceptionWarning"
        )
    ],
}


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


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces '-'."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_pages_resolve() -> None:
    """Every relative link of the README and the docs names a file, and a heading there."""
    broken = []
    for page in [DOCS.parent / "README.md", *PAGES]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https://, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_no_internal_issue_numbers() -> None:
    """Readers see what changed and why, not the tracker's numbers."""
    tracker = re.compile(r"\bissues? #?\d+|(?<![\w&/])#\d+\b", re.IGNORECASE)
    for page in [DOCS.parent / "README.md", *PAGES]:
        found = tracker.findall(page.read_text(encoding="utf-8"))
        assert found == [], f"{page.name}: {found}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [pytest.param(p, id=p.name, marks=MARKS.get(p.name, ())) for p in PAGES]
)
def test_page_python_blocks_run_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    text = page.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    monkeypatch.chdir(tmp_path)
    if "s3://bucket/" in text:
        _serve_s3(request, monkeypatch)
    if "load_dataset(" in text:
        _datasets_offline(tmp_path, monkeypatch)
    namespace: dict[str, Any] = {"__name__": "__main__"}
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
    namespace.clear()
    gc.collect()  # what the page left open is reported here, in this test


def _datasets_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hugging Face ``datasets`` offline, its caches in ``tmp_path`` (as in test_imagenet)."""
    # the environment covers a first import, the config attributes an earlier one
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", tmp_path / "hf_modules")


def _serve_s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A moto server with the bucket ``bucket``, found by s3fs with no storage options."""
    import s3fs

    s3 = request.getfixturevalue("s3")
    s3.client.create_bucket(Bucket="bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)  # here and on the workers
    # filesystems made before the endpoint was set would not see it
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setattr(storage, "_fs_cache", {})


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
