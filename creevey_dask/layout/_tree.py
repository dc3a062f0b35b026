"""The tree being built: the checks of rows, sources and the output folder, and the
folder that is written beside the final one and put in place in one step."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import require_columns
from ..storage import fs as storage
from ..storage.samples import has_sample, is_sample, read_bytes
from .split import null_error

if TYPE_CHECKING:
    pass


logger = logging.getLogger(__name__)

_SHOWN = 5  # how many offending values an error message shows
_COPY_THREADS = 8  # concurrent copies with link="copy"
#: The manifest written at the top of every tree (one row per image).
MANIFEST_NAME = "manifest.csv"


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
        remote = [s for s in sources if not storage.is_local(s) and not is_sample(s)]
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
    if is_sample(path):
        return has_sample(path, storage_options)
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
        self.write(parts, read_bytes(source, self.options))

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
