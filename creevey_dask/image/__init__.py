"""Images: decoding under limits (``decode``), loading a row's source (``loading``),
encoding and writing (``encode``), the format table (``formats``), what a source must
pass (``filters``: :class:`FilterOptions`, the size filter op); ``imagefile`` gathers the
public names."""
