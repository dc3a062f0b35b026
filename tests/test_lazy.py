"""Cheap ``import creevey_dask``: the heavy libraries load on first use, and the accessor
registers when pandas / dask.dataframe are imported later."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import cloudpickle

import creevey_dask


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()


def test_import_loads_no_heavy_library_and_registers_the_accessor_later():
    out = _run(
        """
        import sys
        import creevey_dask
        heavy = ["pandas", "dask", "distributed", "pyarrow", "requests", "numpy", "fsspec"]
        print(sorted(m for m in heavy if m in sys.modules))
        import pandas as pd
        print(type(pd.DataFrame({"a": [1]}).creevey).__name__)
        import dask.dataframe as dd
        ddf = dd.from_pandas(pd.DataFrame({"a": [1]}), npartitions=1)
        print(type(ddf.creevey).__name__)
        print([type(f).__name__ for f in sys.meta_path if type(f).__module__.startswith("creevey")])
        """
    )
    assert out.splitlines() == ["[]", "CreeveyAccessor", "CreeveyAccessor", "[]"]


def test_the_import_hook_leaves_once_both_libraries_are_registered():
    out = _run(
        """
        import sys
        import creevey_dask
        ours = lambda: [f for f in sys.meta_path if type(f).__module__ == "creevey_dask._lazy"]
        print(len(ours()))
        import pandas
        print(len(ours()))  # still waiting for dask.dataframe
        import dask.dataframe
        print(len(ours()), hasattr(dask.dataframe.DataFrame, "creevey"))
        """
    )
    assert out.splitlines() == ["1", "1", "0 True"]


def test_accessor_registers_when_pandas_came_first():
    out = _run(
        """
        import pandas as pd
        import creevey_dask
        print(isinstance(pd.DataFrame({"a": [1]}).creevey, creevey_dask.CreeveyAccessor))
        """
    )
    assert out == "True"


def test_function_names_win_over_their_modules():
    import creevey_dask.download
    import creevey_dask.layout.split

    assert callable(creevey_dask.download)
    assert creevey_dask.download.__name__ == "download"
    assert callable(creevey_dask.split)
    assert creevey_dask.split.__name__ == "split"
    assert sys.modules["creevey_dask.download"].download is creevey_dask.download


def test_the_package_pickles_by_reference():
    assert pickle.loads(cloudpickle.dumps(creevey_dask)) is creevey_dask
    assert pickle.loads(pickle.dumps(creevey_dask)) is creevey_dask


def test_a_run_over_pandas_imports_neither_dask_dataframe_nor_distributed(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (64, 48), (40 * i, 90, 160)).save(tmp_path / f"{i}.jpg")
    out = _run(
        f"""
        import sys
        import pandas as pd
        import creevey_dask
        paths = [{str(tmp_path)!r} + f"/{{i}}.jpg" for i in range(3)]
        for strategy in ("threads", "processes"):
            result = pd.DataFrame({{"path": paths}}).creevey.resize(
                {str(tmp_path / "out")!r} + "-" + strategy, path_col="path", shape=(16, 16),
                progress=False,
                options=creevey_dask.RunOptions(parallel_strategy=strategy),
            )
            print(strategy, list(result["status"]))
        print(sorted(m for m in ("dask.dataframe", "distributed") if m in sys.modules))
        """
    )
    assert out.splitlines() == [
        "threads ['ok', 'ok', 'ok']",
        "processes ['ok', 'ok', 'ok']",
        "[]",
    ]
