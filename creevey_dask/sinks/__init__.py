"""Output formats: files, WebDataset and Parquet shards (``shards``).

``shards`` holds the sink and the layout's contract; beside it, one module per concern:
``shard_options`` (:class:`ShardOptions`, what ``output_format=`` takes), ``keys``,
``spool``, ``records``, ``webdataset``, ``parquet``, ``formats`` (the registry of the
formats' writers), ``resume`` (complete shards, latest records), ``runner``, ``stats``
and ``reading``.
"""
