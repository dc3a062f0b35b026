"""``python -m creevey_dask``: the command line (see :mod:`creevey_dask.cli.main`)."""

from .cli.main import main

raise SystemExit(main())
