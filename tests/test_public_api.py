"""The public API: what ``import creevey_dask`` exports, pinned."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest

import creevey_dask


def test_all_names_exist():
    missing = [name for name in creevey_dask.__all__ if not hasattr(creevey_dask, name)]
    assert missing == []
    assert len(set(creevey_dask.__all__)) == len(creevey_dask.__all__)


def test_the_design_contract_is_exported():
    contract = {
        "Pipeline",
        "report",
        "download_images_as_png",
        "resize_multiple_files",
        "create_imagenet_style_symlinks",
        "BaseDataset",
        "S3Downloader",
        "TarfileExtractor",
        "S3TarfileDataset",
        "ops",
        "split",
        "download",
        "CreeveyError",
    }
    assert contract <= set(creevey_dask.__all__)


def test_exported_members_are_pinned():
    assert sorted(creevey_dask.__all__) == sorted(PINNED)


def _public_callables() -> dict[str, object]:
    """Every public function and method of the API: exports, accessor methods, ops."""
    found: dict[str, object] = {}
    for name in creevey_dask.__all__:
        obj = getattr(creevey_dask, name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            found[name] = obj
            for attr in vars(obj):
                member = getattr(obj, attr)  # descriptors too (the accessor's methods)
                if callable(member) and not attr.startswith("_"):
                    found[f"{name}.{attr}"] = member
        elif inspect.isfunction(obj):
            found[name] = obj
    for attr in creevey_dask.CreeveyAccessor.__mro__[1].__dict__:
        if not attr.startswith("_"):
            found[f"CreeveyAccessor.{attr}"] = getattr(creevey_dask.CreeveyAccessor, attr)
    for name in creevey_dask.ops.__all__:
        obj = getattr(creevey_dask.ops, name)
        if inspect.isfunction(obj):
            found[f"ops.{name}"] = obj
    return found


# The original creevey's functions keep its names; nothing else uses them.
SEED = {
    "download_images_as_png",
    "create_imagenet_style_symlinks",
    "resize_multiple_files",
    "Pipeline",
}


def _parameters(func: object) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(func).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return {}


def test_no_public_function_hides_options_in_kwargs():
    """help() and IDEs show every option: no **kwargs on the public API."""
    allowed = {
        "record",  # record(**values): the values are result columns, not options
        "RunOptions.replace",  # replace(**changes): the fields, checked by name
        "HttpOptions.replace",
        "ShardOptions.replace",
        "FilterOptions.replace",
        "start_local_cluster",  # **cluster_kwargs go to distributed.LocalCluster as is
        "UrlListDataset",  # the worked example: **download_kwargs go to download() as is
    }
    hiding = [
        name
        for name, func in _public_callables().items()
        if name not in allowed and any(p.kind is p.VAR_KEYWORD for p in _parameters(func).values())
    ]
    assert hiding == []


def test_no_docstring_documents_kwargs_the_signature_does_not_take():
    """help() shows the signature and the docstring: no ``**keywords`` entry beside a
    signature that has spelled them out."""
    import re

    stale = [
        name
        for name, func in _public_callables().items()
        if re.search(r"^\s*\*\*\w+\s*$", inspect.getdoc(func) or "", re.MULTILINE)
        and not any(p.kind is p.VAR_KEYWORD for p in _parameters(func).values())
    ]
    assert stale == []


def test_one_vocabulary():
    """Columns are *_col; groupby/stratify take column names; outpath_func; mode resizes."""
    problems = []
    for name, func in _public_callables().items():
        params = _parameters(func)
        seed = name.split(".")[0] in SEED
        for pname, param in params.items():
            if pname.endswith("_colname") and not seed:
                problems.append(f"{name}({pname}=): *_colname is only the seed functions'")
            if pname == "path_func" and name != "download_images_as_png":
                problems.append(f"{name}(path_func=): the new API says outpath_func")
            if pname in ("stratify", "groupby") and "bool" in str(param.annotation):
                problems.append(f"{name}({pname}=): takes a column name, not a bool")
            if pname == "mode" and "resize" not in name and name != "UrlListDataset":
                problems.append(f"{name}(mode=): mode is the resize mode only")
            if pname == "columns" and "int" in str(param.annotation):
                problems.append(f"{name}(columns=): a grid width is ncols")
    assert problems == []


RUNS = [
    "Pipeline.run",
    "download",
    "download_images_as_png",
    "resize_multiple_files",
    "CreeveyAccessor.run",
    "CreeveyAccessor.download",
    "CreeveyAccessor.resize",
    "CreeveySeriesAccessor.run",
]


def _runs() -> dict[str, object]:
    from creevey_dask.resize import resize

    found = _public_callables()
    return {**{name: found[name] for name in RUNS}, "resize": resize}


def test_run_options_are_accepted_by_every_run():
    for name, func in _runs().items():
        params = _parameters(func)
        assert "options" in params, name
        assert "RunOptions" in str(params["options"].annotation), name
        assert {"skip_existing", "progress", "output_format"} <= set(params), name


def test_no_entry_point_takes_more_than_15_parameters():
    """The option objects (frozen dataclasses) hold the many knobs; the calls stay short."""
    import dataclasses

    found = _public_callables()
    too_many = {
        name: len(params)
        for name, func in found.items()
        if not dataclasses.is_dataclass(func)
        and len(params := [p for p in _parameters(func) if p != "self"]) > 15
    }
    assert too_many == {}


def test_each_option_group_is_defined_once():
    """The fields of the option objects are theirs: no run takes one as a parameter
    (but the few shortcuts of RunOptions), and an old keyword says where it went."""
    import dataclasses

    from creevey_dask.resize import resize

    shortcuts = {"n_jobs", "skip_existing", "progress"}
    groups = {
        creevey_dask.RunOptions: "options",
        creevey_dask.HttpOptions: "http_options",
        creevey_dask.ShardOptions: "output_format",
        creevey_dask.FilterOptions: "filters",
    }
    fields = {
        f.name: cls for cls in groups for f in dataclasses.fields(cls) if f.name not in shortcuts
    }
    fields.pop("format")  # ShardOptions.format: the image format of a run is another thing
    for name, func in _runs().items():
        copied = set(_parameters(func)) & set(fields)
        assert copied == set(), (name, copied)
    with pytest.raises(TypeError, match=r"it is a field of ShardOptions: pass output_format="):
        creevey_dask.download([], "out", shard_size=10)
    with pytest.raises(TypeError, match=r"it is a field of RunOptions: pass options="):
        resize(pd.DataFrame({"path": []}), "out", shape=8, storage_options={})
    with pytest.raises(TypeError, match=r"keyword of ops.resize: pass shape=ops.resize"):
        pd.DataFrame({"path": []}).creevey.resize("out", max_dim=8)
    with pytest.raises(TypeError, match=r"it is a field of HttpOptions: pass http_options="):
        pd.Series([], dtype=str).creevey.download("out", retries=0)


def test_every_exception_is_a_creevey_error_and_a_builtin():
    from creevey_dask import exceptions

    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, creevey_dask.CreeveyError)
        if cls is not creevey_dask.CreeveyError:
            builtins = [b for b in cls.__mro__ if b.__module__ == "builtins"]
            assert builtins[0] is not object, name  # also a ValueError, OSError, ...


PINNED: list[str] = [
    "ArchiveError",
    "BaseDataset",
    "ColumnError",
    "ContentEncodingError",
    "CredentialsError",
    "CreeveyAccessor",
    "CreeveySeriesAccessor",
    "CreeveyError",
    "DOWNLOAD_FORMATS",
    "DownloadConnectionError",
    "DownloadError",
    "DownloadTimeoutError",
    "HashMismatchError",
    "HttpError",
    "HttpLoader",
    "HttpOptions",
    "FilterOptions",
    "ShardOptions",
    "ImageDecodeError",
    "ImageFilteredError",
    "ImageLoader",
    "ImageTooLargeError",
    "ImageWriter",
    "MissingDataError",
    "OUTPUT_FORMATS",
    "OutpathClashError",
    "Pipeline",
    "RESULT_COLUMNS",
    "RunOptions",
    "Reporter",
    "RobotsTagError",
    "S3Downloader",
    "S3TarfileDataset",
    "STATUSES",
    "STATUS_DTYPE",
    "SizeLimitError",
    "TarfileExtractor",
    "TooManyRedirectsError",
    "TruncatedBodyError",
    "UnsafeArchiveError",
    "UnsafeSourceError",
    "UpstreamError",
    "UrlListDataset",
    "__version__",
    "compute_result",
    "contact_sheet",
    "create_imagenet_style_symlinks",
    "imagenet_symlinks",
    "decode_image",
    "leaks",
    "download",
    "download_images_as_png",
    "duplicate_sheet",
    "duplicates",
    "format_error",
    "load_image",
    "ops",
    "read_shards",
    "record",
    "report",
    "resize_multiple_files",
    "safe_label",
    "split",
    "start_local_cluster",
    "storage",
    "summarize",
    "summary_figure",
    "summary_table",
    "write_image",
]
