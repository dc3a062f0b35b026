"""Reading and writing image files through fsspec.

:func:`load_image` decodes any fsspec path into a Pillow image; :class:`ImageWriter`
(and its default instance :func:`write_image`) encodes an image and writes it
atomically, choosing the format from the extension unless one is given.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

from . import storage
from .exceptions import ImageDecodeError

__all__ = ["ImageLoader", "ImageWriter", "format_for_path", "load_image", "write_image"]

#: Modes each output format can store as they are; others are converted on write.
_FORMAT_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"},
    "WEBP": {"RGB", "RGBA"},
}


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


def decode_image(
    data: bytes,
    source: Any = None,
    *,
    draft: Callable[[tuple[int, int]], tuple[int, int] | None] | None = None,
) -> Image.Image:
    """Decode ``data`` fully into a Pillow image, raising :class:`ImageDecodeError`.

    ``draft``, if given, maps the stored ``(width, height)`` to the smallest size the
    caller needs (or None); a JPEG is then decoded at the smallest DCT scale that is
    still at least that large (``Image.draft``), which is much faster.
    """
    try:
        image = Image.open(io.BytesIO(data))
        if draft is not None and image.format == "JPEG":
            wanted = draft(image.size)
            if wanted is not None:
                image.draft(image.mode, (int(wanted[0]), int(wanted[1])))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        where = f" {source!r}" if source is not None else ""
        raise ImageDecodeError(f"cannot decode{where} as an image: {err}") from err
    return image


class ImageLoader:
    """Load an image from a local path or any fsspec URL.

    Parameters
    ----------
    storage_options : mapping, optional
        fsspec options for remote paths (e.g. an S3 ``endpoint_url``).
    """

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})

    def __call__(self, source: Any) -> Image.Image:
        path = os.fspath(source)
        return decode_image(storage.read_bytes(path, self.storage_options), path)

    def __repr__(self) -> str:
        return f"ImageLoader(storage_options={self.storage_options!r})"


#: Load an image from a local path or fsspec URL with default options.
load_image = ImageLoader()


def _convert_for(image: Image.Image, fmt: str) -> Image.Image:
    allowed = _FORMAT_MODES.get(fmt)
    if allowed is None or image.mode in allowed:
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha and "RGBA" in allowed:
        return image.convert("RGBA")
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


class ImageWriter:
    """Encode an image and write it atomically to a local path or fsspec URL.

    Parameters
    ----------
    format : str, optional
        A Pillow format name (``"png"``, ``"jpeg"``, ``"webp"``). By default, taken
        from each output path's extension.
    quality : int, optional
        Encoder quality for JPEG and WebP (1-100).
    storage_options : mapping, optional
        fsspec options for remote outputs.
    """

    def __init__(
        self,
        format: str | None = None,
        quality: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if format is not None:
            fmt = format.upper()
            fmt = {"JPG": "JPEG"}.get(fmt, fmt)
            Image.init()  # Image.SAVE is filled lazily: a fresh process may not know JPEG yet
            if fmt not in Image.SAVE:
                raise ValueError(f"format {format!r} is not one Pillow can write")
            format = fmt
        if quality is not None and not (isinstance(quality, int) and 1 <= quality <= 100):
            raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}")
        self.format = format
        self.quality = quality
        self.storage_options = dict(storage_options or {})

    def encode(self, image: Image.Image, fmt: str) -> bytes:
        """The encoded bytes of ``image`` in Pillow format ``fmt``."""
        kwargs: dict[str, Any] = {}
        if self.quality is not None and fmt in ("JPEG", "WEBP"):
            kwargs["quality"] = self.quality
        buffer = io.BytesIO()
        _convert_for(image, fmt).save(buffer, format=fmt, **kwargs)
        return buffer.getvalue()

    def __call__(self, image: Image.Image, outpath: str) -> None:
        fmt = self.format or format_for_path(outpath)
        storage.write_bytes_atomic(outpath, self.encode(image, fmt), self.storage_options)

    def __repr__(self) -> str:
        return (
            f"ImageWriter(format={self.format!r}, quality={self.quality!r}, "
            f"storage_options={self.storage_options!r})"
        )


#: Write an image atomically, the format taken from the path's extension.
write_image = ImageWriter()
