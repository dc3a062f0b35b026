"""The ``creevey`` command line (``main``) and its offline demo (``demo``)."""
