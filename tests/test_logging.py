"""Logging: one logger per module under the package logger, which has a NullHandler."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import subprocess
import sys
import textwrap

import creevey_dask


def test_every_module_logs_to_its_own_logger() -> None:
    modules = [
        m.name
        for m in pkgutil.walk_packages(creevey_dask.__path__, "creevey_dask.")
        if not m.name.endswith("__main__")
    ]
    with_logger = []
    for name in modules:  # subpackages (creevey_dask.sources.http) included
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, logging.Logger) and value.name.startswith("creevey_dask"):
                assert value.name == name, f"{name} logs to {value.name!r}"
                with_logger.append(name.removeprefix("creevey_dask."))
    assert {"engine.partition", "download", "layout.split", "cli.main", "datasets.base"} <= set(
        with_logger
    )
    package = logging.getLogger("creevey_dask")
    assert any(isinstance(h, logging.NullHandler) for h in package.handlers)


def test_nothing_is_printed_without_a_logging_configuration_but_records_propagate() -> None:
    """A warning of the library reaches a configured root handler, and stays silent without."""
    code = textwrap.dedent(
        """
        import logging, sys
        import pandas as pd
        from creevey_dask.engine.summary import summarize
        failed = pd.DataFrame({"status": ["error"] * 3, "error": ["OSError: boom"] * 3})
        summarize(failed)  # warns: most rows failed
        print("configured", flush=True)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
        summarize(failed)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    before, _, after = done.stderr.partition("creevey_dask.engine.summary creevey: 3 rows")
    assert before == ""  # the first warning went nowhere (no "last resort" handler output)
    assert "creevey_dask.engine.summary creevey: 3 of 3 rows (100%) failed" in after
    assert done.stdout == "configured\n"
