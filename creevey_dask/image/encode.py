"""An image to a file: :class:`ImageWriter` (and its default :func:`write_image`) encodes
an image and writes it atomically, choosing the format from the extension unless one is
given, and converting modes the format cannot hold (RGBA → RGB on white for JPEG, 16-bit
→ 8-bit for JPEG and WebP, CMYK → RGB for PNG and WebP, ...). It can record the
``sha256`` and size of the bytes it wrote as result columns."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from ..engine.rows import record
from ..storage import fs as storage
from .decode import GRAY_MODES, SIXTEEN_BIT_MODES, as_i16
from .formats import format_for_path

__all__ = [
    "convert_for_format",
    "to_8bit",
    "write_image",
    "ImageWriter",
]


#: Pixels per band of rows in :func:`to_8bit` (8 MiB of float64 temporaries).
_TILE_PIXELS = 1 << 20


#: Modes each output format can store as they are; others are converted on write.
_FORMAT_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "WEBP": {"RGB", "RGBA"},
}


def to_8bit(image: Image.Image) -> Image.Image:
    """An 8-bit ``"L"`` image from a 16/32-bit integer or float one, scaled, not clipped.

    16-bit images (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) keep their high byte
    (``value >> 8``): a fixed scale from 0-65535, not each image's own value range,
    so the same value gives the same grey in every image. ``I`` images are taken as
    8-bit data if their values fit 0-255, else as 16-bit data (``value // 257``); ``F``
    images as 0-1 if their values fit, else 0-255. Other modes are returned unchanged.
    """
    mode = image.mode
    if mode not in SIXTEEN_BIT_MODES and mode not in ("I", "F"):
        return image
    # In bands of rows, so that the full-size temporaries of the arithmetic (a float64
    # copy is 8 bytes a pixel, and the old whole-image code held several) never exist:
    # the peak is the image, its 8-bit result and one band's temporaries.
    width, height = image.size
    step = max(1, _TILE_PIXELS // max(width, 1))
    bands = [(top, min(top + step, height)) for top in range(0, height, step)]

    def rows(top: int, bottom: int) -> np.ndarray:
        return np.asarray(image.crop((0, top, width, bottom)))

    out = np.empty((height, width), dtype=np.uint8)
    if mode in SIXTEEN_BIT_MODES:
        for top, bottom in bands:
            out[top:bottom] = rows(top, bottom) >> 8
    elif mode == "I":
        extrema = image.getextrema()
        top_value = int(extrema[1]) if width and height else 0  # type: ignore[arg-type,index]
        for top, bottom in bands:
            band = rows(top, bottom)
            scaled = band if top_value <= 255 else band // 257
            out[top:bottom] = np.clip(scaled, 0, 255)
    else:
        peak = 0.0
        for top, bottom in bands:  # the peak of the finite values (inf counts as huge)
            finite = np.nan_to_num(rows(top, bottom).astype(np.float64))
            if finite.size:
                peak = max(peak, float(finite.max()))
        factor = 255.0 if peak <= 1.0 else 1.0
        for top, bottom in bands:
            finite = np.nan_to_num(rows(top, bottom).astype(np.float64))
            finite *= factor
            np.rint(finite, out=finite)
            np.clip(finite, 0, 255, out=finite)
            out[top:bottom] = finite
    return Image.fromarray(out)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _on_white(image: Image.Image) -> Image.Image:
    """Composite an image with alpha over white; ``L`` for grey sources, else ``RGB``."""
    grey = image.mode in ("LA", "La")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background.convert("L") if grey else background


def convert_for_format(image: Image.Image, fmt: str) -> Image.Image:
    """``image`` in a mode that format ``fmt`` stores (the same image if it already is).

    JPEG keeps L, RGB and CMYK; alpha is flattened onto white; 16-bit and float
    greys become 8-bit L (see :func:`to_8bit`). PNG keeps 1, L, LA, P, RGB, RGBA and
    16-bit grey (every 16-bit mode is written as I;16, values kept); 32-bit ``I``
    becomes I;16 (clipped to 0-65535), CMYK, YCbCr, LAB and HSV become RGB. WebP keeps
    RGB and RGBA; alpha is kept, everything else becomes RGB. For any format, the
    in-memory modes no file stores are made storable first: premultiplied ``La`` and
    ``RGBa`` become ``LA`` and ``RGBA``, and ``I;16B``/``I;16L``/``I;16N`` become
    ``I;16``.
    """
    fmt = fmt.upper()
    allowed = _FORMAT_MODES.get(fmt)
    if image.mode in SIXTEEN_BIT_MODES and image.mode != "I;16":
        image = as_i16(image)
    elif image.mode in ("La", "RGBa"):
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    mode = image.mode
    if allowed is None or mode in allowed:
        return image
    if fmt == "PNG" and mode == "I":
        return Image.fromarray(np.clip(np.asarray(image), 0, 65535).astype(np.uint16))
    if mode in GRAY_MODES:
        grey = to_8bit(image) if mode != "1" else image.convert("L")
        return grey if "L" in allowed else grey.convert("RGB")
    if mode == "PA":
        image = image.convert("RGBA")
        if image.mode in allowed:
            return image
    if _has_alpha(image):
        if image.mode == "LA" and "LA" in allowed:
            return image
        if "RGBA" in allowed:
            return image.convert("RGBA")
        flat = _on_white(image)
        return flat if flat.mode in allowed else flat.convert("RGB")
    return image.convert("RGB")


def _fallback_mode(image: Image.Image) -> Image.Image:
    return image.convert("RGBA" if _has_alpha(image) else "RGB")


class ImageWriter:
    """Encode an image and write it atomically to a local path or fsspec URL.

    Parameters
    ----------
    format : str, optional
        A Pillow format name (``"png"``, ``"jpeg"``, ``"webp"``). By default, taken
        from each output path's extension.
    quality : int, optional
        Encoder quality for JPEG and WebP (1-100). PNG is lossless and ignores it.
    storage_options : mapping, optional
        fsspec options for remote outputs.
    record_sha256 : bool, default False
        Record the SHA-256 (hex) and size of the written bytes in the result columns
        ``sha256`` and ``out_bytes``.

    Notes
    -----
    Modes the format cannot hold are converted (see :func:`convert_for_format`);
    anything else Pillow refuses to save is retried as RGB (or RGBA if it has alpha).
    """

    def __init__(
        self,
        format: str | None = None,
        quality: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        record_sha256: bool = False,
    ) -> None:
        if format is not None:
            if not isinstance(format, str):
                raise TypeError(f"format must be a str such as 'png', got {format!r}")
            fmt = format.upper()
            fmt = {"JPG": "JPEG"}.get(fmt, fmt)
            Image.init()
            if fmt not in Image.SAVE:
                raise ValueError(
                    f"format {format!r} is not one Pillow can write; "
                    f"choose from {sorted(Image.SAVE)}"
                )
            format = fmt
        if quality is not None and (
            isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
        ):
            raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}")
        self.format = format
        self.quality = quality
        self.storage_options = dict(storage_options or {})
        self.record_sha256 = bool(record_sha256)

    @property
    def result_columns(self) -> dict[str, Any]:
        """``sha256`` and ``out_bytes`` when ``record_sha256`` is on, else nothing."""
        if self.record_sha256:
            return {"sha256": "string", "out_bytes": "Int64"}
        return {}

    def encode(self, image: Image.Image, fmt: str) -> bytes:
        """The encoded bytes of ``image`` in Pillow format ``fmt``.

        Always into memory first, then written by Python: Pillow's encoder writing to a
        file descriptor itself (which would release the GIL) ignores a short write, so a
        disk that fills during the last write would leave a truncated file behind an
        ``ok`` row, and a disk error would look like a mode the format cannot hold.
        """
        fmt = fmt.upper()
        kwargs: dict[str, Any] = {}
        if self.quality is not None and fmt in ("JPEG", "WEBP"):
            kwargs["quality"] = self.quality
        converted = convert_for_format(image, fmt)
        buffer = io.BytesIO()
        try:
            converted.save(buffer, format=fmt, **kwargs)
        except (OSError, ValueError, KeyError) as err:
            fallback = _fallback_mode(converted)
            if fallback.mode == converted.mode:
                raise ValueError(f"cannot write a {image.mode} image as {fmt}: {err}") from err
            buffer = io.BytesIO()
            fallback.save(buffer, format=fmt, **kwargs)
        return buffer.getvalue()

    def encode_for(self, image: Image.Image, outpath: str) -> tuple[bytes, str]:
        """``(bytes, Pillow format)`` of ``image`` as it would be written to ``outpath``.

        Sharded outputs (:mod:`creevey_dask.sinks.shards`) store these bytes in a shard.
        """
        fmt = self.format or format_for_path(outpath)
        data = self.encode(image, fmt)
        if self.record_sha256:
            record(sha256=hashlib.sha256(data).hexdigest(), out_bytes=len(data))
        return data, fmt

    def __call__(self, image: Image.Image, outpath: str) -> None:
        data, _ = self.encode_for(image, outpath)
        storage.write_bytes_atomic(outpath, data, self.storage_options)

    def __repr__(self) -> str:
        extra = ", record_sha256=True" if self.record_sha256 else ""
        return (
            f"ImageWriter(format={self.format!r}, quality={self.quality!r}, "
            f"storage_options={self.storage_options!r}{extra})"
        )


#: Write an image atomically, the format taken from the path's extension.
write_image = ImageWriter()
