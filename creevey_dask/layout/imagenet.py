"""ImageNet-style folder trees from a table of labelled images.

:func:`imagenet_symlinks` (and the original creevey's
:func:`create_imagenet_style_symlinks`) split the rows with
:func:`creevey_dask.split.split` and lay them out as
``<outdir>/<split>/<label>/<file>`` (symlinks, or copies on any fsspec filesystem),
with a ``manifest.csv``: the layout that torchvision's ``ImageFolder``, fastai and
HuggingFace ``datasets``' ``imagefolder`` read. The tree is built in a hidden folder
beside ``outdir`` and renamed into place, so there is never a half-built tree.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import numbers
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from .._dask_types import is_dask_frame, require_frame
from .._keywords import public_keywords
from ..exceptions import require_columns
from ..options import KEEP_STATUSES
from ..schema import STRING_DTYPE
from ..storage import fs as storage
from ..storage.naming import disambiguate, safe_name
from .split import SPLITS, check_size, null_error, split

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "KEEP_STATUSES",
    "LINK_MODES",
    "MANIFEST_NAME",
    "create_imagenet_style_symlinks",
    "imagenet_symlinks",
    "safe_label",
]

logger = logging.getLogger(__name__)

#: How :func:`imagenet_symlinks` puts a file into the tree (its ``link=``).
LINK_MODES = ("symlink", "copy")
#: The name of the manifest written into ``outdir``.
MANIFEST_NAME = "manifest.csv"

_SHOWN = 5  # how many offending values an error message shows
_COPY_THREADS = 8  # concurrent copies with link="copy"


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


# --------------------------------------------------------------------------- the tree


def _examples(index: pd.Index, mask: Any) -> list[Any]:
    return list(index[np.asarray(mask)][:_SHOWN])


def _check_rows(frame: pd.DataFrame, label_col: str, path_col: str, group_col: str | None) -> None:
    for column, role in ((label_col, "label"), (path_col, "path"), (group_col, "group")):
        if column is None:
            continue
        nulls = frame[column].isna()
        if nulls.any():
            raise null_error(column, role, int(nulls.sum()), _examples(frame.index, nulls))
    paths = frame[path_col]
    not_text = ~paths.map(lambda p: isinstance(p, str) and p != "").astype(bool)
    if not_text.any():
        raise ValueError(
            f"{int(not_text.sum())} path(s) in column {path_col!r} are not non-empty strings, "
            f"e.g. {list(paths[not_text.to_numpy()][:_SHOWN])}"
        )
    dup = paths.duplicated(keep=False)
    if dup.any():
        shown = list(pd.unique(paths[dup.to_numpy()])[:_SHOWN])
        raise ValueError(
            f"{int(dup.sum())} rows share {paths[dup.to_numpy()].nunique()} path(s) in column "
            f"{path_col!r}, e.g. {shown}; a file can sit in the tree only once, so "
            f"drop duplicates first, e.g. df.drop_duplicates({path_col!r})"
        )


def _check_sources(
    sources: Sequence[str], link: str, storage_options: Mapping[str, Any] | None
) -> None:
    if link == "symlink":
        remote = [s for s in sources if not storage.is_local(s)]
        if remote:
            raise ValueError(
                f"{len(remote)} source(s) are not local files, e.g. {remote[:_SHOWN]}; a "
                "symlink can point only at a local file: pass link='copy'"
            )
    missing = [s for s in sources if not _is_file(s, storage_options)]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(sources)} source(s) do not exist or are not files, "
            f"e.g. {missing[:_SHOWN]}; nothing was created"
        )


def _local(path: str) -> str:
    return path if "://" not in path else storage.get_fs(path)[1]


def _is_file(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    if storage.is_local(path):
        return os.path.isfile(_local(path))
    fs, fs_path = storage.get_fs(path, storage_options)
    return bool(fs.isfile(fs_path))


_NOT_EMPTY = "is not empty; pass an empty or new folder"


def _check_outdir(
    outdir: str, link: str, storage_options: Mapping[str, Any] | None, *, allow_full: bool = False
) -> bool:
    """Refuse unusable destinations; return whether ``outdir`` holds anything already.

    A folder that is not empty is refused unless ``allow_full`` (the caller then checks
    that it holds this very tree).
    """
    if not storage.is_local(outdir):
        if link == "symlink":
            raise ValueError(
                f"outdir {outdir!r} is not on the local filesystem, which is the only one "
                "with symlinks; pass link='copy' to copy the files there instead"
            )
        fs, root = storage.get_fs(outdir, storage_options)
        if not fs.exists(root):
            return False
        if not fs.isdir(root):
            raise ValueError(f"outdir {outdir!r} is a file, not a folder")
        if fs.ls(root, detail=False):
            if allow_full:
                return True
            raise ValueError(f"outdir {outdir!r} {_NOT_EMPTY}")
        return False
    local = _local(outdir)
    if not os.path.lexists(local):
        return False
    if not os.path.isdir(local):
        raise ValueError(f"outdir {outdir!r} is not a folder")
    if os.listdir(local):
        if allow_full:
            return True
        raise ValueError(f"outdir {outdir!r} {_NOT_EMPTY}")
    return False


def _check_replace(outdir: str, replace: bool, storage_options: Any) -> None:
    """Refuse to build over a full ``outdir`` unless ``replace`` and it is a tree of ours."""
    if not replace:
        raise ValueError(
            f"outdir {outdir!r} {_NOT_EMPTY} (it does not hold the tree this call makes; "
            "replace=True replaces a tree this function made)"
        )
    if not storage.is_local(outdir):
        raise ValueError(f"replace=True replaces local trees only; {outdir!r} is not local")
    if not storage.exists(storage.join(outdir, MANIFEST_NAME), storage_options):
        raise ValueError(
            f"outdir {outdir!r} {_NOT_EMPTY}: it has no {MANIFEST_NAME}, so it is not a tree "
            "this function made, and replace=True leaves it alone"
        )


def _same_tree(outdir: str, manifest: pd.DataFrame, storage_options: Any) -> bool:
    """Whether ``outdir`` holds the tree of ``manifest`` already: its manifest, its files.

    A rerun of the same call (a notebook cell run twice) then finds its own tree.
    """
    path = storage.join(outdir, MANIFEST_NAME)
    try:
        existing = storage.read_bytes(path, storage_options)
    except (FileNotFoundError, OSError):
        return False
    if existing != manifest.to_csv(index=False).encode("utf-8"):
        return False
    return all(storage.exists(storage.join(outdir, p), storage_options) for p in manifest["path"])


def _check_status(frame: Any, keep_status: Sequence[str] | None, default: bool = False) -> Any:
    if keep_status is None or (default and "status" not in frame.columns):
        return frame
    if isinstance(keep_status, str):
        keep_status = (keep_status,)
    require_columns(
        frame.columns, "the frame (pass keep_status=None to keep every row)", keep_status="status"
    )
    keep = frame["status"].astype(object).isin(list(keep_status)).to_numpy()
    dropped = frame.loc[~keep, "status"].astype(object).value_counts()
    if int(dropped.sum()):
        logger.warning(
            "imagenet folders: left out %d of %d rows whose status is not in %s (%s)",
            int(dropped.sum()),
            len(frame),
            list(keep_status),
            ", ".join(f"{k}: {v}" for k, v in dropped.items()),
        )
    return frame.loc[keep]


#: Name of the marker by which a call claims a remote ``outdir`` while it builds there.
BUILDING_SUFFIX = ".creevey-building"


def _busy(outdir: str) -> FileExistsError:
    return FileExistsError(
        f"outdir {outdir!r} was filled by another call while this one laid out its tree "
        "(two calls into one folder at once?); this call removed what it made and left "
        "the other's files alone; pass a new or empty folder"
    )


class _Tree:
    """Creates the tree; on failure removes what this call made and nothing else.

    Locally the tree is built in a hidden folder of its own beside ``outdir`` (named by
    :func:`storage.temp_path`, so a killed call's folder is swept by the next call
    there) and renamed to ``outdir`` at the end, which
    succeeds only while ``outdir`` is missing or empty: a concurrent call into the same
    folder gets a clear :class:`FileExistsError` naming it, and never touches the other
    call's files. Elsewhere (``link="copy"`` on an object store, which has no atomic
    folder rename) the call claims ``outdir`` with a marker object holding its token,
    checks the claim before finishing, and on failure removes exactly the objects it
    wrote.
    """

    def __init__(
        self, outdir: str, storage_options: Mapping[str, Any] | None, replace: bool = False
    ) -> None:
        self.replace = replace  # a local outdir holding an earlier tree, swapped out at the end
        self.outdir = outdir
        self.options = storage_options
        self.local = storage.is_local(outdir)
        self.token = uuid.uuid4().hex[:12]
        self.base = outdir  # where the tree is built: the staging folder, when local
        self.made: list[str] = []  # folders this call made, in the order made
        self.written: list[str] = []  # remote: the objects this call wrote
        self.claimed = False

    def path(self, *parts: str) -> str:
        return storage.join(self.base, *parts)

    def _claim_path(self) -> str:
        return storage.get_fs(self.outdir, self.options)[1] + "/" + BUILDING_SUFFIX

    def _mkdir(self, path: str) -> None:
        """Make ``path`` and its missing parents, remembering those this call made."""
        if self.local:
            missing = []
            folder = os.path.abspath(path)
            while not os.path.lexists(folder):
                missing.append(folder)
                folder = os.path.dirname(folder)
            for folder in reversed(missing):
                try:
                    os.mkdir(folder)
                except FileExistsError:  # made by someone else meanwhile: not ours
                    continue
                self.made.append(folder)
            return
        fs, fs_path = storage.get_fs(path, self.options)
        missing = []
        folder = fs_path.rstrip("/")
        while folder and folder not in missing and not fs.exists(folder):
            missing.append(folder)
            folder = fs._parent(folder).rstrip("/")
        if missing:
            fs.makedirs(fs_path, exist_ok=True)
            self.made.extend(reversed(missing))

    def start(self) -> None:
        if self.local:
            final = os.path.abspath(_local(self.outdir))
            parent = os.path.dirname(final)
            self._mkdir(parent)
            storage.remove_stale_temporaries(parent)  # of split calls that were killed
            self.base = storage.temp_path(final)
            os.mkdir(self.base)
            self.made.append(self.base)
            return
        self._mkdir(self.outdir)
        fs = storage.get_fs(self.outdir, self.options)[0]
        claim = self._claim_path()
        if fs.exists(claim):
            raise _busy(self.outdir)
        fs.pipe_file(claim, self.token.encode())
        self.claimed = self._still_claimed()
        if not self.claimed:
            raise _busy(self.outdir)

    def _still_claimed(self) -> bool:
        fs = storage.get_fs(self.outdir, self.options)[0]
        try:
            return bytes(fs.cat_file(self._claim_path())) == self.token.encode()
        except FileNotFoundError:
            return False

    def folder(self, *parts: str) -> None:
        self._mkdir(_local(self.path(*parts)) if self.local else self.path(*parts))

    def symlink(self, source: str, parts: Sequence[str], relative: bool) -> None:
        # the staging folder is a sibling of outdir (same depth), so a relative target
        # computed here is right after the rename too
        link = self.path(*parts)
        src = _local(source)
        target = os.path.join(
            os.path.realpath(os.path.dirname(os.path.abspath(src))), os.path.basename(src)
        )
        if relative:
            final_dir = os.path.join(
                os.path.realpath(os.path.dirname(os.path.abspath(_local(self.outdir)))),
                os.path.basename(os.path.abspath(_local(self.outdir))),
                *parts[:-1],
            )
            target = os.path.relpath(target, final_dir)
        os.symlink(target, link)

    def write(self, parts: Sequence[str], data: bytes) -> None:
        path = self.path(*parts)
        storage.write_bytes_atomic(path, data, self.options)
        if not self.local:
            self.written.append(path)

    def copy(self, source: str, parts: Sequence[str]) -> None:
        self.write(parts, storage.read_bytes(source, self.options))

    def finish(self) -> None:
        """Put the built tree in place (locally: one rename); refuse if another call won."""
        if self.local:
            final = os.path.abspath(_local(self.outdir))
            aside = None
            if self.replace:  # the earlier tree moves aside, then goes once this one is in
                aside = storage.temp_path(final)
                os.rename(final, aside)
            try:
                os.rename(self.base, final)  # fails unless final is missing or empty
            except OSError as err:
                if aside is not None:
                    os.rename(aside, final)
                if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise _busy(self.outdir) from err
                raise
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
            self.made.remove(self.base)
            return
        if not self._still_claimed():
            self.claimed = False
            raise _busy(self.outdir)
        fs = storage.get_fs(self.outdir, self.options)[0]
        fs.rm_file(self._claim_path())
        self.claimed = False

    def remove(self) -> None:
        """Remove what this call made; never anything else."""
        if self.local:
            if self.base in self.made:
                shutil.rmtree(self.base, ignore_errors=True)
                self.made.remove(self.base)
            for folder in reversed(self.made):  # parents this call made, if still empty
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            return
        fs = storage.get_fs(self.outdir, self.options)[0]
        for path in self.written:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(storage.get_fs(path, self.options)[1])
        if self.claimed and self._still_claimed():
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(self._claim_path())
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                if not fs.ls(folder, detail=False):
                    fs.rmdir(folder)


def _copy_all(tree: _Tree, sources: Sequence[str], places: Sequence[tuple[str, ...]]) -> None:
    """Copy the files with a few threads (object stores are latency-bound).

    On the first failure the copies not yet started are cancelled and the running
    ones finish before the error propagates, so the clean-up sees every file.
    """
    with ThreadPoolExecutor(max_workers=_COPY_THREADS) as pool:
        futures = [pool.submit(tree.copy, s, p) for s, p in zip(sources, places, strict=True)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


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
        if link == "symlink":
            for source, parts in zip(sources, places, strict=True):
                tree.symlink(source, parts, relative)
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


def create_imagenet_style_symlinks(
    df: pd.DataFrame | dd.DataFrame,
    label_colname: str,
    path_colname: str,
    valid_size: int | float,
    outdir: str | os.PathLike[str],
    groupby_colname: str | None = None,
    random_state: int | np.random.Generator | None = None,
    *,
    stratify: str | None = None,
    test_size: int | float | None = None,
    link: str = "symlink",
    relative: bool = True,
    keep_status: Sequence[str] | None = KEEP_STATUSES,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The original creevey's :func:`imagenet_symlinks`, with its parameter names.

    ``create_imagenet_style_symlinks(df, label_colname, path_colname, valid_size,
    outdir, groupby_colname, random_state)`` is ``imagenet_symlinks(df, outdir,
    label_col=label_colname, path_col=path_colname, valid_size=valid_size,
    groupby=groupby_colname, random_state=random_state)``; the keyword-only parameters
    are :func:`imagenet_symlinks`'s. The original's own positional order,
    ``(df, valid_size, outdir, label_colname, path_colname, ...)``, is recognised too (a
    size is never a str), so code written for it does what it did. A float
    ``valid_size`` gives at least that proportion (rounded up), as the original did.

    Returns
    -------
    pandas.DataFrame
        The manifest (the original returned None).

    Examples
    --------
    >>> import os, pathlib, shutil, tempfile, pandas as pd
    >>> tmp = tempfile.mkdtemp()
    >>> paths = [os.path.join(tmp, f"{i}.jpg") for i in range(4)]
    >>> for p in paths:
    ...     _ = pathlib.Path(p).write_bytes(b"not really a jpeg")
    >>> df = pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog"]})
    >>> manifest = create_imagenet_style_symlinks(
    ...     df, "label", "path", valid_size=1, outdir=os.path.join(tmp, "tree"), random_state=0
    ... )
    >>> manifest["split"].value_counts().to_dict()
    {'train': 3, 'valid': 1}
    >>> shutil.rmtree(tmp)
    """
    if (
        isinstance(valid_size, (str, os.PathLike))
        and isinstance(label_colname, numbers.Real)
        and not isinstance(label_colname, bool)
    ):
        # the original creevey's positional order: (df, valid_size, outdir,
        # label_colname, path_colname); a str is never a size, so this is unambiguous
        label_colname, path_colname, valid_size, outdir = (
            cast(str, valid_size),
            cast(str, outdir),
            label_colname,
            path_colname,
        )
    if isinstance(df, pd.DataFrame) or is_dask_frame(df):  # name the columns as the caller did
        require_columns(
            df.columns,
            label_colname=label_colname,
            path_colname=path_colname,
            groupby_colname=groupby_colname,
        )
    return imagenet_symlinks(
        df,
        outdir,
        label_col=label_colname,
        valid_size=valid_size,
        path_col=path_colname,
        groupby=groupby_colname,
        stratify=stratify,
        test_size=test_size,
        random_state=random_state,
        link=link,
        relative=relative,
        keep_status=keep_status,
        storage_options=storage_options,
    )
