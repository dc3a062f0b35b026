"""Where a row's bytes come from: HTTP (the ``http`` package)."""
