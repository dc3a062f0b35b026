"""Images: decoding under limits (``decode``), loading a row's source (``loading``),
encoding and writing (``encode``), the format table (``formats``), size filters
(``filters``); ``imagefile`` gathers the public names."""
