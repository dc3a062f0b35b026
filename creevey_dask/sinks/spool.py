"""A shard's encoded images on their way: the local spool, the capturing writer, the rows.

Rows run on threads; :class:`Capture` (the run's ``write_func``) encodes each image and
appends it at once to the shard's :class:`Spool`, so a partition holds in memory only
the images in flight. :class:`ShardRows` is what a format's writer gets once the rows
have run: their records, results and places in the spool.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ..engine.rows import record, result_columns_of
from ..image.formats import extension_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["COPY_CHUNK", "SAMPLE_COL", "Capture", "ShardRows", "Spool", "image_ext"]

#: The result column of each image's (spool offset, size, Pillow format, sha256).
SAMPLE_COL = "_creevey_sample"
#: The bytes copied from the spool at a time.
COPY_CHUNK = 1 << 20


def image_ext(fmt: str) -> str:
    """The member extension (no dot) for a Pillow format: ``JPEG`` → ``jpg``."""
    return extension_for(fmt).lstrip(".")


class Spool:
    """A local scratch file the encoded images of a shard go to as they are made.

    Rows run on threads: :meth:`add` appends under a lock and gives the image's place,
    so a partition holds in memory only the images in flight. The file is in the
    temporary folder (``TMPDIR``) and has no name (``tempfile.TemporaryFile``):
    nothing is left behind, not even by a killed run.
    """

    def __init__(self, folder: str | None = None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._end = 0

    def add(self, data: bytes | bytearray | memoryview) -> tuple[int, int]:
        with self._lock:
            offset = self._end
            self._file.seek(offset)
            self._file.write(data)
            self._end += len(data)
        return offset, len(data)

    def read(self, offset: int, size: int) -> bytes:
        with self._lock:
            self._file.seek(offset)
            return self._file.read(size)

    def copy(self, offset: int, size: int, write: Callable[[bytes], Any]) -> None:
        """Pass bytes ``[offset, offset + size)`` to ``write``, a chunk at a time."""
        done = 0
        while done < size:
            chunk = self.read(offset + done, min(COPY_CHUNK, size - done))
            if not chunk:
                raise OSError(f"the spool of this shard ended {size - done} bytes early")
            write(chunk)
            done += len(chunk)

    def close(self) -> None:
        self._file.close()


class Capture:
    """A write_func that spools the encoded image and records its place in the spool."""

    def __init__(self, write_func: Any) -> None:
        self.write_func = write_func
        self.spool: Spool | None = None

    @property
    def result_columns(self) -> dict[str, Any]:
        return result_columns_of(self.write_func)

    def __call__(self, image: Any, outpath: str) -> None:
        data, fmt = self.write_func.encode_for(image, outpath)
        if not data:
            raise ValueError("write_func encoded no bytes: no image is 0 bytes")
        width, height = image.size
        assert self.spool is not None
        sha256 = hashlib.sha256(data).hexdigest()
        offset, size = self.spool.add(data)
        del data
        record(**{"width": width, "height": height, SAMPLE_COL: (offset, size, fmt, sha256)})


@dataclass
class ShardRows:
    """One shard's rows, run and ready to be written: what a format's writer gets.

    ``records`` (one row per row of the shard, positions from 0) and ``result`` (the
    rows' result frame) are the writer's to change: a row that cannot be stored becomes
    an error there, alone, with ``ok`` set to False.
    """

    path: str  # the shard's file
    records_path: str  # its records (for Parquet shards, the shard itself)
    records: pd.DataFrame
    result: pd.DataFrame
    samples: list[Any]  # per row: (spool offset, size, Pillow format, sha256) if ok
    keys: list[str]
    ok: np.ndarray
    spool: Spool
    caption_col: str | None
    storage_options: Mapping[str, Any]
