"""ImageNet-style folder trees from a table of labelled images.

:func:`imagenet_symlinks` (and the original creevey's
:func:`~creevey_dask.original.create_imagenet_style_symlinks`) split the rows with
:func:`creevey_dask.layout.split.split` and lay them out as
``<outdir>/<split>/<label>/<file>`` (symlinks, or copies on any fsspec filesystem),
with a ``manifest.csv``: the layout that torchvision's ``ImageFolder``, fastai and
HuggingFace ``datasets``' ``imagefolder`` read. The tree is built in a hidden folder
beside ``outdir`` and renamed into place, so there is never a half-built tree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._dask_types import is_dask_frame, require_frame
from .._keywords import public_keywords
from ..exceptions import require_columns
from ..options import KEEP_STATUSES
from ..schema import STRING_DTYPE
from ..storage.naming import disambiguate, safe_name
from ..storage.samples import is_sample, split_sample
from ._tree import (
    MANIFEST_NAME,
    _check_outdir,
    _check_replace,
    _check_rows,
    _check_sources,
    _check_status,
    _copy_all,
    _same_tree,
    _Tree,
)
from .split import SPLITS, check_size, split

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "KEEP_STATUSES",
    "LINK_MODES",
    "MANIFEST_NAME",
    "imagenet_symlinks",
    "safe_label",
]

logger = logging.getLogger(__name__)

#: How :func:`imagenet_symlinks` puts a file into the tree (its ``link=``).
LINK_MODES = ("symlink", "copy")
#: The name of the manifest written into ``outdir``.


# --------------------------------------------------------------------------- names


def safe_label(label: Any) -> str:
    """A safe folder name for ``label``: one path component, not hidden, never ``..``.

    :func:`creevey_dask.storage.naming.safe_name` of the label's text: path separators,
    control characters and characters that Windows refuses become ``_``; leading dots
    become ``_`` and trailing dots and spaces go; an empty result is ``_``; Windows
    device names (``CON``, ``NUL``, ...) get a leading ``_``; names longer than 255
    bytes are cut and end in a hash of the label. The mapping is deterministic. Two
    labels with the same safe name are told apart by
    :func:`create_imagenet_style_symlinks` with a hash suffix
    (:func:`creevey_dask.storage.naming.disambiguate`).

    Examples
    --------
    >>> safe_label("cats/dogs"), safe_label(".."), safe_label(".hidden"), safe_label(3)
    ('cats_dogs', '_', '_hidden', '3')
    """
    return safe_name(str(label))


def _label_folders(labels: Iterable[Any]) -> dict[Any, str]:
    """Distinct folder names for distinct labels, even on case-insensitive filesystems."""
    distinct = list(dict.fromkeys(labels))
    names = {label: safe_label(label) for label in distinct}
    clashes = pd.Series([n.casefold() for n in names.values()]).duplicated(keep=False).to_numpy()
    for label, clash in zip(distinct, clashes, strict=True):
        if clash:
            names[label] = disambiguate(names[label], repr(label))
    if len({n.casefold() for n in names.values()}) != len(names):  # pragma: no cover
        raise ValueError("could not give every label its own folder name")
    return names


def _basename(source: str) -> str:
    sample = split_sample(source)
    if sample is not None and is_sample(source):  # a shard's sample: its member's name
        return sample[1].rsplit("/", 1)[-1]
    return str(source).rstrip("/").rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]


def _file_names(folders: Sequence[str], sources: Sequence[str]) -> list[str]:
    """A file name per row, unique within its label folder, deterministic.

    A name keeps the source's basename; when two sources under one label share a
    basename (ignoring case), each of them gets a short hash of its source.
    """
    names = [safe_name(_basename(s)) for s in sources]
    keys = pd.Series([f"{f}/{n.casefold()}" for f, n in zip(folders, names, strict=True)])
    clash = keys.duplicated(keep=False).to_numpy()
    for i in map(int, np.flatnonzero(clash)):
        names[i] = disambiguate(names[i], str(sources[i]))
    keys = pd.Series([f"{f}/{n.casefold()}" for f, n in zip(folders, names, strict=True)])
    if not keys.duplicated().any():
        return names
    raise ValueError("could not give every file its own name")  # pragma: no cover


@public_keywords("imagenet_symlinks")
def imagenet_symlinks(
    df: pd.DataFrame | dd.DataFrame,
    outdir: str | os.PathLike[str],
    *,
    label_col: str,
    valid_size: int | float,
    path_col: str = "outpath",
    groupby: str | None = None,
    stratify: str | None = None,
    test_size: int | float | None = None,
    random_state: int | np.random.Generator | None = None,
    link: str = "symlink",
    relative: bool = True,
    keep_status: Sequence[str] | None = KEEP_STATUSES,
    storage_options: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> pd.DataFrame:
    """Lay images out as ``<outdir>/{train,valid}/<label>/<file>``, ImageNet style.

    Rows are split with :func:`split` (``groupby`` keeps a group's rows on one side),
    then each file is linked (or copied) into the folder of its split and label.
    Every label folder exists under every split, empty if need be, because some
    frameworks pair ``train`` and ``valid`` folders by position. ``manifest.csv`` in
    ``outdir`` records, per row, ``source``, ``label``, ``split``, ``group`` and
    ``path`` (the created file, relative to ``outdir``).

    Everything is checked before anything is created. A local tree is built in a
    hidden folder beside ``outdir`` and renamed into place at the end, so there is
    never a half-built tree; if creating fails part way, the files and folders this
    call made are removed again, and nothing it did not make. A second call into the
    same folder at the same time gets a :class:`FileExistsError` naming the folder
    (the first call's tree is kept whole).

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        One row per image. A dask frame is computed (the columns named here).
    outdir : str or path-like
        A new or empty folder. With ``link="copy"`` any fsspec URL (``s3://``,
        ``memory://``); object stores have no empty folders, so there empty label
        folders cannot exist.
    label_col : str
        The column with each image's label.
    valid_size : int or float
        Groups (with ``groupby``) or rows for ``valid``: an int is a count, a float in
        (0, 1) a proportion, rounded up; see :func:`split`.
    path_col : str, default "outpath"
        The column with each image's path (a local path or, with ``link="copy"``, any
        fsspec URL). Nulls and duplicate paths are refused.
    groupby : str, optional
        Rows sharing a value of this column all go to the same split.
    stratify : str, optional
        A column (usually ``label_col``) whose proportions each split keeps close to
        the whole's.
    test_size : int or float, optional
        Also make a ``test`` folder of this size.
    random_state : int, optional
        The seed of the split.
    link : {"symlink", "copy"}, default "symlink"
        Symlinks need local files and a local ``outdir``; ``"copy"`` works anywhere.
    relative : bool, default True
        Symlinks point at their source by a relative path, so the tree survives being
        moved together with its images; ``False`` makes absolute links.
    keep_status : sequence of str or None, default ("ok", "skipped")
        Keep only rows whose ``status`` is one of these, logging how many were left
        out: by default the rows whose file exists, written now or by an earlier run.
        The default keeps every row of a frame without a ``status`` column; None keeps
        every row.
    storage_options : mapping, optional
        fsspec options for ``outdir`` and for remote sources.
    replace : bool, default False
        A local ``outdir`` that holds an earlier tree made by this function (it has a
        ``manifest.csv``) is replaced by the new tree once that is complete (a
        notebook rerun with other rows). The same call run again changes nothing
        either way. Any other full folder is refused.

    Returns
    -------
    pandas.DataFrame
        The manifest: ``source``, ``label``, ``split``, ``group``, ``path``, indexed
        like the rows used.

    Raises
    ------
    ColumnError
        A named column is missing.
    ValueError
        ``outdir`` is not empty (unless it holds this very call's tree: a rerun
        of the same call returns the manifest and changes nothing), a label, path or
        group is null, paths repeat, a
        source does not exist, a size is out of range, or symlinks are asked for
        where they cannot exist. Nothing is created in these cases.
    FileExistsError
        Another call filled ``outdir`` while this one built its tree; this call's
        files are removed, the other call's are untouched.

    Examples
    --------
    >>> import os, pathlib, shutil, tempfile, pandas as pd
    >>> tmp = tempfile.mkdtemp()
    >>> paths = [os.path.join(tmp, f"{i}.jpg") for i in range(4)]
    >>> for p in paths:
    ...     _ = pathlib.Path(p).write_bytes(b"not really a jpeg")
    >>> df = pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog"]})
    >>> manifest = imagenet_symlinks(
    ...     df, os.path.join(tmp, "tree"), label_col="label", path_col="path", valid_size=1,
    ...     random_state=0,
    ... )
    >>> sorted(os.listdir(os.path.join(tmp, "tree", "valid")))
    ['cat', 'dog']
    >>> manifest["split"].value_counts().to_dict()
    {'train': 3, 'valid': 1}
    >>> shutil.rmtree(tmp)
    """
    if link not in LINK_MODES:
        raise ValueError(f"link {link!r} is not one of {sorted(LINK_MODES)}")
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be True or False, got {relative!r}")
    if isinstance(stratify, bool):
        raise TypeError(
            f"stratify takes a column name (or None), not {stratify!r}; to stratify on the "
            f"labels pass stratify={label_col!r}"
        )
    check_size("valid_size", valid_size, allow_none=False)
    check_size("test_size", test_size, allow_none=True)
    require_frame(df)
    require_columns(
        df.columns, label_col=label_col, path_col=path_col, groupby=groupby, stratify=stratify
    )
    outdir = os.fspath(outdir)
    full = _check_outdir(outdir, link, storage_options, allow_full=True)

    columns = list(dict.fromkeys(c for c in (path_col, label_col, groupby, stratify) if c))
    if keep_status is not None and "status" in df.columns:
        columns.append("status")
    frame = df[columns]
    if is_dask_frame(frame):
        frame = frame.compute()
    frame = _check_status(frame, keep_status, default=keep_status is KEEP_STATUSES)
    if frame.empty:
        raise ValueError("no rows to lay out (the frame is empty after filtering)")
    _check_rows(frame, label_col, path_col, groupby)
    work = pd.DataFrame(
        {
            "source": frame[path_col].astype(object),
            "label": frame[label_col].astype(object),
            "group": frame[groupby].astype(object) if groupby else None,
            "stratum": frame[stratify].astype(object) if stratify else None,
        },
        index=frame.index,
    )
    assigned = split(
        work,
        valid_size,
        groupby="group" if groupby else None,
        stratify="stratum" if stratify else None,
        test_size=test_size,
        random_state=random_state,
    )
    sources = list(work["source"])
    _check_sources(sources, link, storage_options)

    folders = _label_folders(work["label"])
    folder_of = [folders[label] for label in work["label"]]
    names = _file_names(folder_of, sources)
    splits = [s for s in SPLITS if s != "test" or test_size is not None]
    row_splits = assigned["split"].astype(object).tolist()
    manifest = pd.DataFrame(
        {
            "source": pd.array(sources, dtype=STRING_DTYPE),
            "label": pd.array([str(x) for x in work["label"]], dtype=STRING_DTYPE),
            "split": pd.array(row_splits, dtype=STRING_DTYPE),
            "group": pd.array(
                [None if g is None else str(g) for g in work["group"]], dtype=STRING_DTYPE
            ),
            "path": pd.array(
                [f"{s}/{f}/{n}" for s, f, n in zip(row_splits, folder_of, names, strict=True)],
                dtype=STRING_DTYPE,
            ),
        },
        index=work.index,
    )

    if full:
        if _same_tree(outdir, manifest, storage_options):  # this very call, run again
            logger.info("imagenet folders in %s: already built by the same call", outdir)
            return manifest
        _check_replace(outdir, replace, storage_options)
    tree = _Tree(outdir, storage_options, replace=full)
    try:
        tree.start()
        for s in splits:
            for folder in sorted(set(folders.values())):
                tree.folder(s, folder)
        places = list(zip(row_splits, folder_of, names, strict=True))
        if link == "symlink":  # a shard's samples are copied: a link cannot point into a tar
            linked = [not is_sample(source) for source in sources]
            for source, parts, flag in zip(sources, places, linked, strict=True):
                if flag:
                    tree.symlink(source, parts, relative)
            copied = [
                (s, p) for s, p, flag in zip(sources, places, linked, strict=True) if not flag
            ]
            if copied:
                _copy_all(tree, [s for s, _ in copied], [p for _, p in copied])
        else:
            _copy_all(tree, sources, places)
        tree.write([MANIFEST_NAME], manifest.to_csv(index=False).encode("utf-8"))
        tree.finish()
    except BaseException:
        tree.remove()
        raise
    counts = manifest["split"].value_counts().to_dict()
    logger.info("imagenet folders in %s: %s, %d labels", outdir, counts, len(folders))
    return manifest
