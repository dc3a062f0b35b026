"""Reproducible datasets: BaseDataset and S3TarfileDataset (``base``), S3Downloader
(``s3download``), safe tar extraction (``tarfiles``) and a worked example,
UrlListDataset (``url_list``)."""
