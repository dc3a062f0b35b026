"""The tutorial notebooks run without error and show what they promise (nbclient).

Each notebook is executed in a fresh ``python3`` kernel (ipykernel) whose working folder
and ``TMPDIR`` are the test's temporary folder; the kernel (and the dask workers it
starts) import this checkout's ``creevey_dask`` through ``PYTHONPATH``. The notebooks
start their own loopback image server, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 180  # seconds per cell: generous for a loaded 2-core machine


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, cwd: Path) -> dict[str, list[Any]]:
    """Execute notebook ``name`` with ``cwd`` as its folder; return outputs by cell id."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "TMPDIR": str(cwd)}  # mkdtemp() in cwd
    client.execute(env=env)  # raises on a failing cell
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


def has_png(outputs: list[Any]) -> bool:
    return any("image/png" in output.get("data", {}) for output in outputs)


def test_notebooks_on_disk_are_the_generated_ones_without_outputs() -> None:
    generator = _generator()
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(generator.NOTEBOOKS)
    for name, cells in generator.NOTEBOOKS.items():
        on_disk = (NOTEBOOKS / name).read_text(encoding="utf-8")
        assert on_disk == generator.render(cells), (
            f"run python notebooks/make_notebooks.py ({name})"
        )
        notebook = nbformat.reads(on_disk, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == []
                assert cell.execution_count is None


def test_quickstart(tmp_path: Path) -> None:
    out = run("01_quickstart.ipynb", tmp_path)

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
    assert has_png(out["contact-sheet"])
    assert has_png(out["summary-figure"])


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
