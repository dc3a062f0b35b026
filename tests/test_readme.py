"""Every Python block of README.md runs as written, in order, as one fresh script.

The blocks are pasted, in order, into one script that a fresh ``python`` runs in an empty
folder, twice (a reader runs a quickstart again). S3 paths reach a moto server on
127.0.0.1 through ``AWS_ENDPOINT_URL`` (inherited by the dask workers a block starts),
with a bucket named ``bucket``; HTTP URLs come from the README's own use of
:mod:`creevey_dask.testing`. Nothing leaves the machine.

No block is skipped. The extractor still reads the marker an unrunnable block would
carry (an HTML comment on the line before its fence, ``<!-- readme-test: skip (why) -->``),
so that the test can refuse it by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

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


def test_readme_is_a_front_door() -> None:
    """At most 12 KiB: the rest of the documentation is in docs/, and the README links it."""
    assert README.stat().st_size <= 12_288
    text = README.read_text(encoding="utf-8")
    for page in sorted((README.parent / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"docs/{page.name}" in text or page.name in _index_text(), page.name
    assert "docs/index.md" in text


def _index_text() -> str:
    return (README.parent / "docs" / "index.md").read_text(encoding="utf-8")


def test_the_extractor_finds_blocks_and_skip_markers() -> None:
    text = (
        "intro\n```python\na = 1\n```\n\n```bash\nls\n```\n"
        "<!-- readme-test: skip (needs a GPU) -->\n```python\nb = 2\n```\n"
    )
    assert python_blocks(text) == [(3, "a = 1\n", None), (11, "b = 2\n", "needs a GPU")]
    with pytest.raises(AssertionError, match="needs a reason"):
        python_blocks("<!-- readme-test: skip -->\n```python\nc = 3\n```\n")


#: Appended to the README's blocks: what the test checks, from the script's own objects.
_FACTS = """
import json as _json
_json.dump(
    {
        "res": res.status.value_counts().to_dict(),
        "errors": res.loc[res.status == "error", "error"].tolist(),
        "error_types": res.error_type.value_counts().to_dict(),
        "small": small.status.value_counts().to_dict(),
    },
    open("readme-facts.json", "w"),
)
"""


def readme_script(text: str) -> str:
    """Every Python block of ``text``, in order, as one script (line numbers kept).

    All of it under ``if __name__ == "__main__":``, as the README's cluster block says a
    script that starts worker processes must be (they import the script again).
    """
    lines = ['if __name__ == "__main__":']
    for line, code, reason in python_blocks(text):
        assert reason is None, f"README.md:{line}: a skipped block ({reason})"
        lines += [""] * (line - 1 - len(lines))  # a traceback points into the README
        lines += [f"    {row}" if row.strip() else "" for row in code.splitlines()]
    facts = [f"    {row}" if row.strip() else "" for row in _FACTS.splitlines()]
    return "\n".join(lines + facts) + "\n"


@pytest.mark.slow
@pytest.mark.cluster
def test_readme_python_blocks_run_as_written(tmp_path: Path, s3: Any) -> None:
    """One fresh script of every block, run twice in one folder, as a reader would."""
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3  # the quickstart, the dask frame, the cluster
    script = tmp_path / "readme.py"
    script.write_text(readme_script(README.read_text(encoding="utf-8")), encoding="utf-8")
    s3.client.create_bucket(Bucket="bucket")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": s3.endpoint_url,  # s3fs here and on the workers
        "PYTHONPATH": str(README.parent),
        "HF_HOME": str(tmp_path / "hf-home"),  # datasets' cache, offline
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    work = tmp_path / "work"
    work.mkdir()
    runs = []
    for _ in range(2):  # the second run: in the same folder, everything is there already
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        runs.append(json.loads((work / "readme-facts.json").read_text()))

    # The quickstart did what its comments say.
    first, second = runs
    assert first["res"] == {"ok": 12, "error": 1, "skipped": 0}
    assert first["errors"] == ["HttpError: HTTP 404 Not Found"]
    assert first["error_types"] == {"HttpError": 1}
    assert first["small"] == {"ok": 12, "skipped": 0, "error": 1}
    # the rerun's server has another port, so its URLs are other sources: downloaded
    # again under suffixed names, and the tree replaced (replace=True)
    assert second["res"] == first["res"]
    assert second["small"] == first["small"]
    assert sorted(p.name for p in (work / "tree").iterdir()) == [
        "manifest.csv",
        "train",
        "valid",
    ]
    assert len(list((work / "images").glob("*.jpg"))) == 24
    manifest = pd.read_csv(work / "tree" / "manifest.csv")
    assert len(manifest) == 12
    for path in manifest.path:
        assert (work / "tree" / path).resolve().is_file()
    # The dask blocks wrote their downloads to S3 (moto) and their results.
    assert len(s3.fs.glob("bucket/images/*.jpg")) == 24  # 12 a run, as images/
    assert (work / "results.parquet").exists()
    assert s3.fs.exists("bucket/results.parquet")
