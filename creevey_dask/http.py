"""``creevey_dask.http``: the public name of :mod:`creevey_dask.sources.http`."""

from __future__ import annotations

from .sources.http import *  # noqa: F403 - the same API under its older, shorter name
from .sources.http import __all__ as __all__
