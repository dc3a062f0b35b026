"""Output formats: files, WebDataset and Parquet shards (``shards``)."""
