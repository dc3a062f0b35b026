"""Dataset layouts from result tables: train/valid/test splits (``split``) and
ImageNet-style folder trees (``imagenet``)."""
