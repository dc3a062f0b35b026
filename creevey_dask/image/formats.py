"""The one table of image formats: names users type, Pillow's names, file extensions.

Every task that names an output format asks here: ``resize(format=)``,
``download(format=)``, the writers (a format from an outpath's extension) and the shard
members' extensions.
"""

from __future__ import annotations

import os

from PIL import Image

__all__ = ["extension_for", "format_for_path", "format_name"]

#: The extension each common format is written with; others take Pillow's first one.
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "GIF": ".gif"}
#: Spellings users type for Pillow's format names.
_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}


def format_name(format: str) -> str:
    """Pillow's name of a writable format from what a user typed (``"jpg"`` → ``"JPEG"``).

    Raises
    ------
    TypeError
        If ``format`` is not a str.
    ValueError
        If Pillow cannot write the format.
    """
    if not isinstance(format, str):
        raise TypeError(f"format must be a str such as 'jpeg', got {format!r}")
    fmt = _ALIASES.get(format.upper(), format.upper())
    Image.init()
    if fmt not in Image.SAVE:
        raise ValueError(
            f"format {format!r} is not one Pillow can write; choose from {sorted(Image.SAVE)}"
        )
    return fmt


def extension_for(fmt: str) -> str:
    """The file extension, with its dot, for a Pillow format name (``"JPEG"`` → ``".jpg"``)."""
    fmt = fmt.upper()
    if fmt in _EXTENSIONS:
        return _EXTENSIONS[fmt]
    for ext, name in Image.registered_extensions().items():
        if name == fmt:
            return ext
    return "." + fmt.lower()  # pragma: no cover - every writable format has an extension


def format_for_path(path: str) -> str:
    """The Pillow format name for ``path``'s extension (``"x.jpg"`` → ``"JPEG"``).

    Raises
    ------
    ValueError
        If the extension is missing or not one Pillow can write.
    """
    ext = os.path.splitext(str(path).split("?")[0])[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(
            f"cannot tell an image format from the extension {ext!r} of {path!r}; "
            "use an extension such as .png, .jpg or .webp, or pass format="
        )
    return fmt
