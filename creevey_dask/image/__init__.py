"""Images: loading, decoding, encoding and writing (``imagefile``); filters and source
hashes (``checks``)."""
