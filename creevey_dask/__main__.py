"""``python -m creevey_dask``: the command line (see :mod:`creevey_dask.cli`)."""

from .cli import main

raise SystemExit(main())
