"""Every Python block of README.md runs as written, in order, like the cells of a notebook.

The blocks share one namespace and run in a temporary working folder. S3 paths reach a
moto server on 127.0.0.1 through ``AWS_ENDPOINT_URL`` (inherited by the dask workers a
block starts), with a bucket named ``bucket``; HTTP URLs come from the README's own use of
:mod:`creevey_dask.testing`. Nothing leaves the machine.

A block that cannot run here is marked in the README by an HTML comment on the line just
before its opening fence, which GitHub does not render::

    <!-- readme-test: skip (why it cannot run in the suite) -->

Prefer making the block runnable: the reason is required, and the test lists it.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest

from creevey_dask.testing import ImageServer

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b\s*(.*?)\s*-->\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(first line number, code, skip reason or None)`` of each ```python block."""
    blocks = []
    for match in FENCE.finditer(text):
        fence_line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        reason = skip.group(1).strip("() ") if skip else None
        if skip and not reason:
            raise AssertionError(f"README.md:{fence_line - 1}: a readme-test skip needs a reason")
        blocks.append((fence_line + 1, match.group(1), reason))
    return blocks


def test_the_extractor_finds_blocks_and_skip_markers() -> None:
    text = (
        "intro\n```python\na = 1\n```\n\n```bash\nls\n```\n"
        "<!-- readme-test: skip (needs a GPU) -->\n```python\nb = 2\n```\n"
    )
    assert python_blocks(text) == [(3, "a = 1\n", None), (11, "b = 2\n", "needs a GPU")]
    with pytest.raises(AssertionError, match="needs a reason"):
        python_blocks("<!-- readme-test: skip -->\n```python\nc = 3\n```\n")


def _close(namespace: dict[str, Any]) -> None:
    """Stop what the blocks started: Clients (and their clusters), image servers."""
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


@pytest.mark.slow
@pytest.mark.cluster
def test_readme_python_blocks_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: Any
) -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3  # the quickstart, the dask frame, the cluster
    s3.client.create_bucket(Bucket="bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)  # s3fs here and on the workers
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    try:
        for line, code, reason in blocks:
            if reason is not None:
                continue
            # compiled with README.md's line numbers, so a traceback points into the README
            exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)
    finally:
        with contextlib.suppress(Exception):
            _close(namespace)

    # The quickstart did what its comments say.
    res, small = namespace["res"], namespace["small"]
    assert res.status.value_counts().to_dict() == {"ok": 12, "error": 1, "skipped": 0}
    assert res.loc[res.status == "error", "error"].tolist() == ["HttpError: HTTP 404 Not Found"]
    assert (small.status == "ok").sum() == 12
    assert sorted(p.name for p in (tmp_path / "tree").iterdir()) == [
        "manifest.csv",
        "train",
        "valid",
    ]
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 12
    # The dask blocks wrote their downloads to S3 (moto) and their results.
    assert len(s3.fs.glob("bucket/images/*.jpg")) == 12
    assert (tmp_path / "results.parquet").exists()
    assert s3.fs.exists("bucket/results.parquet")
