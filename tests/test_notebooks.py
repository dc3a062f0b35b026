"""The tutorial notebooks: committed executed, and they run without error (nbclient).

Each notebook is executed by ``notebooks/make_notebooks.py``'s own ``execute`` (the code
that writes the committed outputs) in a fresh ``python3`` kernel whose working folder and
``TMPDIR`` are the test's temporary folder; the kernel (and the dask workers it starts)
import this checkout's ``creevey_dask`` through ``PYTHONPATH``. The notebooks start their
own loopback image server, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
REGENERATE = "run python notebooks/make_notebooks.py --execute"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, cwd: Path) -> dict[str, list[Any]]:
    """Execute notebook ``name`` with ``cwd`` as its folder; return outputs by cell id."""
    generator = _generator()
    notebook = generator.execute(name, generator.NOTEBOOKS[name], workdir=cwd)
    return {cell.id: cell.outputs for cell in notebook.cells if cell.cell_type == "code"}


def text(outputs: list[Any]) -> str:
    """Everything a cell printed or displayed as text."""
    parts = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def has_image(outputs: list[Any]) -> bool:
    return any({"image/png", "image/jpeg"} & set(output.get("data", {})) for output in outputs)


def test_notebooks_on_disk_are_the_generated_ones_executed() -> None:
    generator = _generator()
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(generator.NOTEBOOKS)
    for name, cells in generator.NOTEBOOKS.items():
        on_disk_text = (NOTEBOOKS / name).read_text(encoding="utf-8")
        notebook = nbformat.reads(on_disk_text, as_version=4)
        expected = generator.build(cells)
        assert [(c.cell_type, c.id, c.source) for c in notebook.cells] == [
            (c.cell_type, c.id, c.source) for c in expected.cells
        ], f"{REGENERATE} ({name})"
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), REGENERATE
        assert all(o.output_type != "error" for c in code for o in c.outputs)
        assert sum(bool(c.outputs) for c in code) >= len(code) - 2  # all but the clean-up
        # written by the script, normalised: no random ports, temporary folders, timings
        normalized = generator.normalize(name, copy.deepcopy(notebook))
        assert generator.write(normalized) == on_disk_text, f"{REGENERATE} ({name})"
        outputs = nbformat.writes(nbformat.v4.new_notebook(cells=code))
        assert not re.search(r"127\.0\.0\.1:\d", outputs)
        assert not re.search(r"creevey-notebook-(?!XXXXXXXX)\w", outputs)
        assert len(on_disk_text) < 200_000, f"{name} is {len(on_disk_text)} characters"
    quickstart = nbformat.read(NOTEBOOKS / "01_quickstart.ipynb", as_version=4)
    shown = {c.id: c.outputs for c in quickstart.cells if c.cell_type == "code"}
    assert has_image(shown["contact-sheet"])  # visible where the repository is browsed
    assert has_image(shown["summary-figure"])
    tables = [o for o in shown["download"] if "data" in o]  # after the bar, on stderr
    assert "text/html" in tables[0].data  # the result table, as a table


def test_quickstart(tmp_path: Path) -> None:
    out = run("01_quickstart.ipynb", tmp_path)

    # one call shows its progress: the bar's last state and the summary, on stderr
    shown = [o for o in out["download"] if o.output_type == "stream"]
    assert [o.name for o in shown] == ["stderr"]
    assert "22/22" in shown[0].text
    assert "creevey: 22 rows in N s: 16 ok, 0 skipped, 6 error; 16 images written" in (
        shown[0].text
    )
    assert "HttpError" in text(out["error-types"])
    # the outputs are left in place, to look at
    (kept,) = tmp_path.glob("creevey-notebook-*")
    assert len(list((kept / "images").glob("*.jpg"))) == 19
    assert len(list((kept / "thumbs").glob("*.jpg"))) == 19

    errors = text(out["error-counts"])
    assert "HttpError: HTTP 503" in errors
    assert "HttpError: HTTP 404 Not Found" in errors
    assert "ImageDecodeError" in errors
    first = text(out["status-counts"])
    assert "ok         16" in first
    assert "error       6" in first
    after = text(out["status-after-retry"])  # the three flaky URLs recovered
    assert "ok         19" in after
    assert "error       3" in after
    assert "HttpError: HTTP 503" not in text(out["retry"])
    assert has_image(out["contact-sheet"])
    assert has_image(out["summary-figure"])
    # the flaky URLs' images are copies of three others: found, drawn, kept on one side
    assert "16 groups of images, 3 with copies" in text(out["duplicates"])
    assert has_image(out["duplicates"])
    assert text(out["leaks"]).startswith("0 pairs cross the grouped split")


def test_distributed(tmp_path: Path) -> None:
    out = run("02_distributed.ipynb", tmp_path)

    assert "dashboard: http://127.0.0.1:" in text(out["cluster"])
    assert "4" in text(out["read"])
    assert "Dask DataFrame Structure" in text(out["lazy"])  # lazy until written
    counts = text(out["write"])
    assert "ok         24" in counts
    assert "error       2" in counts
    errors = text(out["errors"])
    assert "404" in errors
    assert "UpstreamError: the previous step failed: HttpError: HTTP 404" in errors
    # a sharded run on the cluster, read back with read_shards and with webdataset
    assert ".tar'" in text(out["shards"])
    shard_counts = text(out["records"]).split()
    assert shard_counts[shard_counts.index("ok") + 1] == "24"
    assert shard_counts[shard_counts.index("error") + 1] == "2"
    assert "24 samples;" in text(out["wds"])
    assert "(128, 128)" in text(out["wds"])
    assert has_image(out["wds"])


def test_datasets(tmp_path: Path) -> None:
    out = run("03_datasets.ipynb", tmp_path)

    assert "HttpError: HTTP 404 Not Found" in text(out["download-result"])
    tree = text(out["tree"])
    for split in ("train", "valid"):  # every label under both splits, empty if need be
        for label in ("circle", "square", "triangle"):
            assert f"{split}/{label}: " in tree
    assert "-> ../../../images/" in tree  # relative symlinks to the resized images
    assert "requests during the rebuild: 0" in text(out["rebuild"])
    assert "skipped    12" in text(out["rebuild"])
