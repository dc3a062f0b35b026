"""A run's progress: where it shows (stderr, a pty, a notebook, a cluster), and that a
display that fails never fails the run. Each run here is real: real files, a real
terminal (``pty``), a real Jupyter kernel (nbclient) and a real ``LocalCluster``."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pytest
from PIL import Image

import creevey_dask as cd
from creevey_dask.engine.progress import RunProgress, display_kind

ROOT = Path(__file__).resolve().parent.parent

#: A script that resizes the files given as arguments with progress on (the default).
SCRIPT = textwrap.dedent(
    """
    import sys
    import pandas as pd
    import creevey_dask
    df = pd.DataFrame({"path": sys.argv[2:]})
    res = df.creevey.resize(sys.argv[1], shape=creevey_dask.ops.resize(max_dim=8))
    print("statuses", res.status.tolist())
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}


def _check_outputs(outdir: Path, sources: list[str]) -> None:
    for source in sources:
        with Image.open(outdir / Path(source).name) as image:
            assert max(image.size) == 8


def test_progress_goes_to_stderr_when_nothing_is_a_terminal(image_files, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), *image_files],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
        timeout=120,
    )
    # stdout is the user's: only what the script printed
    assert done.stdout.splitlines() == ["statuses " + str(["ok"] * 5)]
    assert "5/5" in done.stderr  # the bar's last state, in rows
    assert "creevey: 5 rows in " in done.stderr
    _check_outputs(out, image_files)


def test_progress_is_a_live_bar_on_a_terminal(image_files, tmp_path):
    out = tmp_path / "out"
    primary, secondary = pty.openpty()
    # a terminal of 24 x 100, as a real one reports its size
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(out), *image_files],
            stdout=subprocess.PIPE,
            stderr=secondary,
            env=_env(),
        )
        os.close(secondary)
        seen = b""
        while True:  # read the terminal until the child closes it
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child is gone
                break
            if not chunk:
                break
            seen += chunk
        stdout = proc.stdout.read().decode() if proc.stdout else ""
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
        if proc.stdout:
            proc.stdout.close()
    text = seen.decode("utf-8", "replace")
    assert "\r" in text  # redrawn in place
    assert "100%" in text
    assert "5/5" in text
    assert "creevey: 5 rows in " in text
    assert stdout.splitlines() == ["statuses " + str(["ok"] * 5)]
    _check_outputs(out, image_files)


def test_a_notebook_without_ipywidgets_gets_a_text_bar_with_a_client(image_files, tmp_path):
    """The default call in a notebook with a Client and no ipywidgets: a run, not a crash."""
    import nbclient
    import nbformat

    block = textwrap.dedent(
        """
        import sys

        class NoWidgets:  # this kernel's environment lacks ipywidgets
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "ipywidgets":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NoWidgets())
        for name in [m for m in sys.modules if m.split(".")[0] == "ipywidgets"]:
            del sys.modules[name]
        """
    )
    run = textwrap.dedent(
        f"""
        import pandas as pd
        import creevey_dask
        from creevey_dask.engine.progress import display_kind
        from distributed import Client
        client = Client(processes=False, n_workers=1, threads_per_worker=2,
                        dashboard_address=":0")
        df = pd.DataFrame({{"path": {image_files!r}}})
        res = df.creevey.resize({str(tmp_path / "nb")!r},
                                shape=creevey_dask.ops.resize(max_dim=8),
                                options=creevey_dask.RunOptions(npartitions=2))
        client.close()
        print(display_kind(), res.status.tolist())
        """
    )
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(block), nbformat.v4.new_code_cell(run)]
    )
    nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute(env={**_env(), "TMPDIR": str(tmp_path)})
    outputs = notebook.cells[1].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    stdout = "".join(o.text for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.text for o in outputs if o.get("name") == "stderr")
    assert f"text {['ok'] * 5}" in stdout
    assert "5/5" in stderr
    assert "creevey: 5 rows in " in stderr
    _check_outputs(tmp_path / "nb", image_files)
    assert not list((tmp_path / "nb").glob("*creevey-tmp*"))  # nothing left behind


@pytest.mark.cluster
def test_progress_on_a_local_cluster(local_cluster_client, image_files, tmp_path, capfd):
    df = pd.DataFrame({"path": image_files})
    res = df.creevey.resize(
        str(tmp_path / "out"), shape=cd.ops.resize(max_dim=8), options=cd.RunOptions(npartitions=3)
    )
    out, err = capfd.readouterr()
    assert (res.status == "ok").all()
    assert "5/5" in err
    assert "creevey: 5 rows in " in err
    assert "rows" not in out
    _check_outputs(tmp_path / "out", image_files)
    # a lazy result: the helper shows its partitions and the summary
    lazy = dd.from_pandas(df, npartitions=2).creevey.resize(
        str(tmp_path / "lazy"), progress=True, shape=cd.ops.resize(max_dim=8)
    )
    computed = cd.compute_result(lazy)
    out, err = capfd.readouterr()
    assert isinstance(computed, pd.DataFrame)
    assert (computed.status == "ok").all()
    assert "2/2" in err
    assert "creevey: 5 rows in " in err
    _check_outputs(tmp_path / "lazy", image_files)


def test_a_lazy_result_gets_progress_and_summary_when_computed(image_files, tmp_path, capfd):
    df = pd.DataFrame({"path": [*image_files, str(tmp_path / "gone.jpg")]})
    lazy = dd.from_pandas(df, npartitions=3).creevey.resize(
        str(tmp_path / "out"), shape=cd.ops.resize(max_dim=8)
    )
    assert "creevey: " not in capfd.readouterr().err  # nothing ran yet
    computed = cd.compute_result(lazy)
    out, err = capfd.readouterr()
    assert "3/3" in err
    assert "creevey: 6 rows in " in err
    assert ": 5 ok, 0 skipped, 1 error; 5 images written (" in err
    assert out == ""
    assert computed.status.tolist() == ["ok"] * 5 + ["error"]
    assert computed.error_type.tolist()[-1] == "FileNotFoundError"
    _check_outputs(tmp_path / "out", image_files)
    quiet = cd.compute_result(lazy, progress=False)
    assert capfd.readouterr().err == ""
    assert quiet.status.tolist() == ["ok"] * 0 + ["skipped"] * 5 + ["error"]
    with pytest.raises(TypeError, match="dask or pandas DataFrame"):
        cd.compute_result([1, 2])


class _BrokenStderr:
    """A stderr that cannot be written to (a closed pipe, say)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


def test_a_failing_display_is_logged_once_and_the_run_goes_on(
    image_files, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(sys, "stderr", _BrokenStderr())
    df = pd.DataFrame({"path": image_files})
    with caplog.at_level(logging.WARNING, logger="creevey_dask"):
        res = df.creevey.resize(
            str(tmp_path / "out"),
            shape=cd.ops.resize(max_dim=8),
            options=cd.RunOptions(npartitions=5),
        )
    assert (res.status == "ok").all()
    _check_outputs(tmp_path / "out", image_files)
    failures = [r for r in caplog.records if "progress display failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    assert "BrokenPipeError" in failures[0].getMessage()


def test_a_bar_that_is_off_shows_nothing(capfd):
    with RunProgress(10, enabled=False) as bar:
        bar.update(4)
    assert bar.done == 4
    assert capfd.readouterr() == ("", "")
    assert display_kind() == "text"  # not in a notebook kernel


def _kernel_sees(code: str, tmp_path: Path) -> Any:
    import nbclient
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute(env=_env())
    return "".join(o.get("text", "") for o in notebook.cells[0].outputs)


def test_in_a_kernel_the_display_follows_ipywidgets(tmp_path):
    code = "from creevey_dask.engine.progress import display_kind, in_notebook\n"
    code += "print(in_notebook(), display_kind())"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        expected = "True text"
    else:
        expected = "True widget"
    assert _kernel_sees(code, tmp_path).strip() == expected
