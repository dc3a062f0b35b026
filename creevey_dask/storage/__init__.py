"""Where outputs live and how they are committed.

    fs          fsspec paths: joins, local/remote tests, atomic writes, temporary names,
                the sweep of dead writers' temporaries, reading a row's source bytes
    naming      outpath functions and the one owner of output names (plain, hashed)
    provenance  the proof an output carries of its source, and the exclusive commit
    samples     shard samples as sources (``<shard>.tar#<member>``): ranged reads, indexes
    sample_names  how a sample's source and members are named
    _records    the records fallback: proofs kept in this machine's cache, for stores
                that hold none

``creevey_dask.storage`` is also the public name of :mod:`creevey_dask.storage.fs`'s
functions (``storage.join``, ``storage.write_bytes_atomic``, ...).
"""

from __future__ import annotations

from .fs import *  # noqa: F403 - the package's public face is the fs module's API
from .fs import __all__ as __all__
