"""Bytes to a Pillow image, safely: limits from the header before any pixel is
allocated, the reduced JPEG decode, the EXIF orientation, one clear error for bad data.

:func:`decode_image` refuses decompression bombs from the header (``max_pixels``), bounds
a row's decoded memory (``max_row_bytes``, and a machine-wide budget), refuses
progressive JPEGs past ``max_scans`` and PNGs with bad CRCs, decodes JPEGs at reduced
scale (``Image.draft``) when the first op says it needs less, applies the EXIF
orientation and gives one :class:`~creevey_dask.exceptions.ImageDecodeError` for every
kind of bad data.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .._fork import reset_in_child
from ..engine.rows import on_row_end
from ..exceptions import ImageDecodeError, ImageTooLargeError
from ..sources.hashing import observe_source

__all__ = [
    "as_i16",
    "check_max_pixels",
    "decode_image",
    "draft_scale",
    "estimate_row_bytes",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_ROW_BYTES",
    "DEFAULT_MAX_SCANS",
    "DRAFT_ORIGINAL_SIZE_KEY",
    "DraftHint",
    "GRAY_MODES",
    "SIXTEEN_BIT_MODES",
]


#: The default limit on the pixels an image may declare (Pillow's own warning limit,
#: about 89 megapixels, e.g. 10,000 x 8,900).
DEFAULT_MAX_PIXELS = 89_478_485


def check_max_pixels(max_pixels: Any) -> int | None:
    """``max_pixels`` if it is a positive int or None; else the ValueError naming it."""
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    return max_pixels


#: The default memory budget of one row: the peak bytes of decoding, converting and
#: encoding its image, estimated from the header before any pixel is decoded
#: (:func:`estimate_row_bytes`). Measured (``benchmarks/bench_row_memory.py``): a
#: 24-megapixel RGB JPEG written as PNG peaks at about 150 MiB, estimated 170 MiB;
#: a CMYK JPEG just under ``max_pixels`` written as PNG peaked at about 690 MiB.
DEFAULT_MAX_ROW_BYTES = 512 * 2**20

#: The default limit on the scans (SOS markers) of a JPEG. Encoders write 1 (baseline)
#: to about 10-20 (progressive scripts); decoding time grows with the scan count times
#: the pixels, so thousands of scans are a way to hold a core for minutes.
DEFAULT_MAX_SCANS = 256

#: After a reduced-scale decode, ``image.info[DRAFT_ORIGINAL_SIZE_KEY]`` holds the full
#: ``(width, height)`` (after EXIF orientation), so that a resize computes its output
#: size from the full size and gives the same size whether or not the decode was reduced.
DRAFT_ORIGINAL_SIZE_KEY = "creevey_draft_original_size"

#: ``draft=`` may be a size ``(width, height)`` or a callable ``(width, height) -> size | None``.
DraftHint = Callable[[tuple[int, int]], tuple[int, int] | None] | tuple[int, int] | None

#: Pillow's 16-bit grey modes, and every single-band mode.
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
GRAY_MODES = {"1", "L", "I", "F", *SIXTEEN_BIT_MODES}
_ORIENTATION = ExifTags.Base.Orientation
_SWAPS_AXES = {5, 6, 7, 8}
# Pillow warns about (and past twice its limit refuses) big images inside Image.open,
# before we can apply our own limit. Its warning must never reach the user as such, and
# warnings filters are process-global, so the short header parse runs under this lock.
_open_lock = threading.Lock()
reset_in_child(globals(), locks=["_open_lock"])

# Magic bytes of formats people meet and Pillow cannot read, to name them in messages.
_KNOWN_UNSUPPORTED = (
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML document (an SVG drawing?)"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"{", "JSON text"),
)


def _describe(data: bytes) -> str:
    """What ``data`` looks like, for an error message about unreadable bytes."""
    head = bytes(data[:64])
    lowered = head.lstrip().lower()
    for magic, what in _KNOWN_UNSUPPORTED:
        if lowered.startswith(magic.lower()):
            return what
    if head[4:8] == b"ftyp":
        return f"an ISO media file of brand {head[8:12].decode('latin-1')!r} (HEIC/AVIF/video?)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised binary data starting {head[:12]!r}"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"text starting {text[:24]!r}"
    return f"unrecognised data starting {head[:12]!r}"


def draft_scale(full: tuple[int, int], drafted: tuple[int, int]) -> tuple[float, float]:
    """How many pixels of the full image one pixel of a reduced JPEG decode spans, per axis.

    A JPEG decoded at 1/s keeps ``ceil(n / s)`` pixels of an axis of ``n``, pixel ``i``
    covering full pixels ``[i * s, (i + 1) * s)``: the scale is exactly ``s``, not
    ``n / ceil(n / s)`` (mapping a crop box with the latter shifts it by up to a
    reduced pixel at the far edge).

    Examples
    --------
    >>> draft_scale((1001, 667), (126, 84))
    (8.0, 8.0)
    """
    for scale in (2, 4, 8):
        if all(-(-n // scale) == d for n, d in zip(full, drafted, strict=True)):
            return float(scale), float(scale)
    return full[0] / drafted[0], full[1] / drafted[1]


def _draft_request(draft: DraftHint, size: tuple[int, int], swap: bool) -> tuple[int, int] | None:
    """The size to ask ``Image.draft`` for, in the file's own (unrotated) orientation."""
    if draft is None:
        return None
    oriented = (size[1], size[0]) if swap else size
    wanted = draft(oriented) if callable(draft) else draft
    if wanted is None:
        return None
    width, height = (int(wanted[0]), int(wanted[1]))
    if swap:
        width, height = height, width
    if width >= size[0] and height >= size[1]:
        return None
    return max(width, 1), max(height, 1)


def _open_unchecked(data: bytes) -> Image.Image:
    """Open ``data`` with the first Pillow plugin that accepts it, skipping Pillow's size check.

    Used after ``Image.open`` failed, to learn a bomb's size (and honour a ``max_pixels``
    above Pillow's limit) or the plugin's own reason for refusing a corrupt header.
    """
    Image.init()
    prefix = bytes(data[:16])
    failure: tuple[str, BaseException] | None = None
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            accepted = accept is None or accept(prefix) is True
        except (IndexError, TypeError, ValueError, struct.error):  # a prefix too short for it
            accepted = False
        if not accepted:
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError) as err:
            if accept is not None:  # a plugin that recognised the signature
                failure = failure or (fmt, err)
    if failure is not None:
        fmt, cause = failure
        raise ImageDecodeError(f"corrupt {fmt} header: {cause}") from cause
    raise ImageDecodeError(f"not an image format Pillow can read ({_describe(data)})")


#: Bytes per pixel of Pillow's in-memory modes: one byte for 1, L and P, two for the
#: 16-bit greys, four for I and F and for every multi-band mode (stored 4 bytes a pixel).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I": 4, "F": 4, **dict.fromkeys(SIXTEEN_BIT_MODES, 2)}
#: Modes every output format stores as they are (no converted copy is made).
_NO_CONVERSION = frozenset({"1", "L", "RGB"})


def estimate_row_bytes(
    mode: str,
    size: tuple[int, int],
    target: tuple[int, int] | None = None,
    *,
    frames: int = 1,
    data_bytes: int = 0,
) -> int:
    """The peak bytes one row is expected to take, from an image's header alone.

    The encoded data, plus the decoded image (``mode`` and ``size``; twice that for an
    animation, whose frames are composited), plus a converted copy for the output
    format (none for 1, L and RGB; one byte a pixel for the 8-bit grey of 16-bit and
    float images, four otherwise), plus the encoded output (at most its raw size). The
    conversion and the encoding are counted at ``target`` size when the next step
    (a resize) says it needs less.

    Examples
    --------
    >>> estimate_row_bytes("RGB", (6000, 4000)) // 2**20  # decoded 4 B/px + PNG <= 3 B/px
    160
    >>> estimate_row_bytes("CMYK", (9400, 9400)) // 2**20  # + an RGB copy for PNG
    1011
    """
    width, height = size
    pixels = width * height
    decoded = pixels * _BYTES_PER_PIXEL.get(mode, 4) * (2 if frames > 1 else 1)
    out = pixels
    if target is not None:
        out = min(pixels, max(1, target[0]) * max(1, target[1]))
    if mode in _NO_CONVERSION:
        converted = 0
    elif mode in GRAY_MODES:
        converted = out
    else:
        converted = out * 4
    if target is not None and out < pixels:
        converted += out * 4  # the resized image
    try:
        bands = Image.getmodebands(mode)
    except (KeyError, ValueError):
        bands = 4
    encoded = out * min(bands, 4) * (2 if mode in SIXTEEN_BIT_MODES else 1)
    return data_bytes + decoded + converted + encoded


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return 16 * 2**30


class _MemoryGate:
    """The bytes the rows in flight in this process may hold together (their estimates).

    A row reserves its estimate before it decodes and gives it back when it ends
    (:func:`creevey_dask.engine.rows.on_row_end`); a row that does not fit waits for others
    to end. A row is always let in when no other holds memory, and a second decode in
    one row adds to its reservation without waiting, so rows never wait on each other
    in a circle. Outside a running row nothing is reserved.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._cond = threading.Condition()
        self._local = threading.local()

    def reserve(self, need: int) -> None:
        held = getattr(self._local, "held", 0)
        with self._cond:
            if not held:
                while self.in_use and self.in_use + need > self.capacity:
                    self._cond.wait()
            self.in_use += need
        if not held and not on_row_end(self._release):
            with self._cond:  # not in a row: nothing to hold on to
                self.in_use -= need
                self._cond.notify_all()
            return
        self._local.held = held + need

    def _release(self) -> None:
        held, self._local.held = getattr(self._local, "held", 0), 0
        with self._cond:
            self.in_use -= held
            self._cond.notify_all()


#: Rows in flight per process are bounded by memory too: their estimates together stay
#: under half the machine's memory.
_gate = _MemoryGate(_physical_memory() // 2)


def _check_budget(
    image: Image.Image,
    data: bytes,
    where: str,
    max_row_bytes: int | None,
    target: tuple[int, int] | None,
) -> None:
    """Refuse an image whose row would take more than ``max_row_bytes`` (see the estimate);
    else reserve its estimate in the process's memory gate (waiting if it is full)."""
    frames = int(getattr(image, "n_frames", 1) or 1) if getattr(image, "is_animated", False) else 1
    need = estimate_row_bytes(image.mode, image.size, target, frames=frames, data_bytes=len(data))
    if max_row_bytes is not None and need > max_row_bytes:
        width, height = image.size
        raise ImageTooLargeError(
            f"refused{where}: decoding, converting and writing its {width} x {height} "
            f"{image.mode} image would take about {need / 2**20:,.0f} MiB, more than the "
            f"memory budget of a row, max_row_bytes={max_row_bytes:,} "
            f"({max_row_bytes / 2**20:,.0f} MiB); raise max_row_bytes= to allow it"
        )
    _gate.reserve(need)


_ICO_MAGIC = b"\x00\x00\x01\x00"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _ico_payload_sizes(data: bytes) -> list[tuple[int, int]]:
    """The sizes the images inside an ICO declare in their own headers (PNG or BMP).

    Pillow decodes an ICO's largest image inside ``Image.open``, so its true size (a
    PNG payload's may be anything, whatever the directory says) is read here first.
    """
    if data[:4] != _ICO_MAGIC or len(data) < 6:
        return []
    count = min(int.from_bytes(data[4:6], "little"), 512)
    sizes = []
    for i in range(count):
        entry = 6 + 16 * i
        if entry + 16 > len(data):
            break
        offset = int.from_bytes(data[entry + 12 : entry + 16], "little")
        head = data[offset : offset + 32]
        if head[:8] == _PNG_MAGIC and len(head) >= 24:
            sizes.append((int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")))
        elif len(head) >= 12:  # a BMP (DIB) header: int32 width, height (doubled: mask)
            width = abs(int.from_bytes(head[4:8], "little", signed=True))
            height = abs(int.from_bytes(head[8:12], "little", signed=True)) // 2
            sizes.append((width, height))
    return sizes


def _precheck_decoded_at_open(
    data: bytes, where: str, max_pixels: int | None, max_row_bytes: int | None
) -> None:
    """Check the formats whose plugin decodes inside ``Image.open`` (ICO) before opening.

    Outside the open lock, so a hostile icon costs one header read, not a decode that
    holds every other row of the process.
    """
    for width, height in _ico_payload_sizes(data):
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                f"refused{where}: an image inside the ICO declares {width} x {height} = "
                f"{width * height:,} pixels, more than max_pixels={max_pixels:,} (a possible "
                "decompression bomb); raise max_pixels (a run's "
                "filters=FilterOptions(max_pixels=...)) to allow it"
            )
        if max_row_bytes is not None:
            need = estimate_row_bytes("RGBA", (width, height), data_bytes=len(data))
            if need > max_row_bytes:
                raise ImageTooLargeError(
                    f"refused{where}: decoding the {width} x {height} image inside the ICO "
                    f"would take about {need / 2**20:,.0f} MiB, more than the memory budget "
                    f"of a row, max_row_bytes={max_row_bytes:,}; raise max_row_bytes= to "
                    "allow it"
                )


def _open(data: bytes, where: str, max_pixels: int | None) -> Image.Image:
    try:
        with _open_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, UnidentifiedImageError) as err:
        try:
            image = _open_unchecked(data)
        except ImageDecodeError as reason:
            raise ImageDecodeError(f"cannot decode{where}: {reason}") from err
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as err:
        raise ImageDecodeError(f"cannot decode{where}: corrupt image header: {err}") from err
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"refused{where}: its header declares {width} x {height} = {width * height:,} "
            f"pixels, more than max_pixels={max_pixels:,} (a possible decompression bomb); "
            "raise max_pixels (a run's filters=FilterOptions(max_pixels=...)) to allow it"
        )
    return image


#: The segments, each with a length, that a provably single-scan JPEG may have before its
#: scan: APPn, COM, DQT, DHT, DRI, and one sequential Huffman frame (SOF0 or SOF1).
_HEADER_SEGMENTS = frozenset({*range(0xE0, 0xF0), 0xFE, 0xDB, 0xC4, 0xDD})
_SEQUENTIAL_FRAMES = frozenset({0xC0, 0xC1})


def _one_scan_only(data: bytes) -> bool:
    """Whether the JPEG's headers prove it has a single scan, so its scans need no count.

    True only for the plain layout: SOI, then back-to-back segments of the kinds in
    :data:`_HEADER_SEGMENTS` (each skipped by its length, as libjpeg skips or consumes
    it), one sequential frame, and a first scan that holds every component. libjpeg
    then expects the end of the image after that scan and refuses a second one at
    once. Anything else (a restart or other parameterless marker, stray or fill bytes,
    a second frame, a progressive, arithmetic or lossless frame, a truncated header)
    answers False, and the scans are counted.
    """
    if data[:2] != b"\xff\xd8":
        return False
    pos, end = 2, len(data)
    components: int | None = None
    for _ in range(256):  # segments before the first scan
        if pos + 4 > end or data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return False
        body = pos + 4
        if marker in _SEQUENTIAL_FRAMES:
            if components is not None or body + 6 > end:
                return False
            components = data[body + 5]
        elif marker == 0xDA:  # the first scan: does it hold every component?
            return components is not None and body < end and data[body] == components
        elif marker not in _HEADER_SEGMENTS:
            return False
        pos += 2 + length
    return False


def _check_scans(data: bytes, image: Image.Image, where: str, max_scans: int | None) -> None:
    """Refuse a JPEG with more than ``max_scans`` scans, counting its SOS markers.

    ``FF DA`` cannot occur inside entropy-coded data (an ``FF`` there is followed by
    ``00``), so counting it over the whole file counts the scans, plus at most those of
    an embedded thumbnail: a bound found before any pixel is decoded. A file whose
    headers prove a single scan (:func:`_one_scan_only`, most photos) is not counted:
    the count walks the whole file holding the GIL, ~0.2 ms for a 200 KB JPEG.
    """
    if max_scans is None or image.format not in ("JPEG", "MPO") or _one_scan_only(data):
        return
    scans = data.count(b"\xff\xda")
    if scans > max_scans:
        raise ImageTooLargeError(
            f"refused{where}: the JPEG has {scans:,} scans, more than max_scans={max_scans:,} "
            "(decoding time grows with the scans); raise max_scans= to allow it"
        )


def _check_png_crcs(data: bytes, where: str) -> None:
    """Verify every PNG chunk's CRC (Pillow checks only the header chunks)."""
    view = memoryview(data)
    pos, end = 8, len(data)
    while pos + 12 <= end:
        length = struct.unpack_from(">I", view, pos)[0]
        kind = bytes(view[pos + 4 : pos + 8])
        stop = pos + 8 + length
        if stop + 4 > end:
            return  # a truncated file: the decoder says so
        expected = struct.unpack_from(">I", view, stop)[0]
        if zlib.crc32(view[pos + 4 : stop]) & 0xFFFFFFFF != expected:
            name = kind.decode("latin-1", "replace")
            raise ImageDecodeError(
                f"cannot decode{where}: corrupt PNG data: bad CRC in the {name} chunk at byte {pos}"
            )
        if kind == b"IEND":
            return
        pos = stop + 4


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # a corrupt EXIF block must not cost the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def decode_image(
    data: bytes,
    source: Any = None,
    *,
    draft: DraftHint = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    exif_transpose: bool = True,
    max_scans: int | None = DEFAULT_MAX_SCANS,
    max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
) -> Image.Image:
    """Decode ``data`` into a loaded Pillow image, safely.

    Parameters
    ----------
    data : bytes
        The encoded image.
    source : object, optional
        Where the data came from, named in error messages.
    draft : callable or (width, height), optional
        The smallest size the next step needs. A callable is given the image's size
        (after EXIF orientation) and returns a size or None, like an op's
        ``draft_size``. When it asks for less than the full size, a JPEG is decoded
        at reduced scale (``Image.draft``: 1/2, 1/4 or 1/8) but never below the size
        asked for. Other formats ignore it.
    max_pixels : int or None, default DEFAULT_MAX_PIXELS
        Refuse images whose header declares more pixels than this, before decoding
        them. None removes this limit (Pillow's own, ``PIL.Image.MAX_IMAGE_PIXELS``
        x 2, still applies).
    exif_transpose : bool, default True
        Rotate or flip the image as its EXIF orientation tag says.
    max_scans : int or None, default DEFAULT_MAX_SCANS
        Refuse JPEGs with more scans (SOS markers) than this, before decoding them:
        decoding time grows with the scan count. None removes this limit.
    max_row_bytes : int or None, default DEFAULT_MAX_ROW_BYTES (512 MiB)
        The memory budget of the row: refuse an image whose decode, conversion and
        encode are estimated from its header (:func:`estimate_row_bytes`) to take
        more, before decoding it. Formats that Pillow decodes while opening (ICO) are
        checked before opening. None removes this limit.

    Returns
    -------
    PIL.Image.Image
        The decoded image; for an animated GIF or WebP, its first frame. 16-bit grey
        in any byte order (``I;16B``, ...) is returned as ``I;16``, values kept.

    Raises
    ------
    ImageTooLargeError
        The header declares more than ``max_pixels`` pixels, a JPEG has more than
        ``max_scans`` scans, or the row would take more than ``max_row_bytes``.
    ImageDecodeError
        The data is empty, truncated, corrupt or not in a format Pillow reads.

    Examples
    --------
    >>> from PIL import Image
    >>> import io
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (800, 600)).save(buffer, "JPEG")
    >>> decode_image(buffer.getvalue(), draft=(200, 150)).size
    (200, 150)
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    where = f" {source!r}" if source is not None else ""
    observe_source(data)  # compute_hash= / verify_hash= of a run (a no-op otherwise)
    if len(data) == 0:
        raise ImageDecodeError(f"cannot decode{where}: the data is empty (0 bytes)")
    if max_row_bytes is not None and (isinstance(max_row_bytes, bool) or max_row_bytes < 1):
        raise ValueError(f"max_row_bytes must be a positive int or None, got {max_row_bytes!r}")
    _precheck_decoded_at_open(data, where, max_pixels, max_row_bytes)
    image = _open(data, where, max_pixels)
    _check_scans(data, image, where, max_scans)
    orientation = _orientation(image) if exif_transpose else 1
    request = _draft_request(draft, image.size, orientation in _SWAPS_AXES)
    if request is not None and image.format in ("JPEG", "MPO"):
        full = image.size
        image.draft(image.mode, request)
        if image.size != full:
            swap = orientation in _SWAPS_AXES
            image.info[DRAFT_ORIGINAL_SIZE_KEY] = (full[1], full[0]) if swap else full
    _check_budget(image, data, where, max_row_bytes, request)
    if image.format == "PNG":
        _check_png_crcs(data, where)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as err:
        what = "truncated" if "truncated" in str(err) else "corrupt"
        raise ImageDecodeError(
            f"cannot decode{where}: {what} {image.format or 'image'} data: {err}"
        ) from err
    if image.mode in SIXTEEN_BIT_MODES and image.mode != "I;16":
        # big-endian 16-bit pixels (TIFF's I;16B) come out of Pillow 13's resize and
        # other ops garbled: hand on the same values as I;16
        native = as_i16(image)
        native.format, native.info = image.format, dict(image.info)
        image = native
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    return image


#: The largest local or fsspec file a loader reads unless told otherwise (1 GiB).


def as_i16(image: Image.Image) -> Image.Image:
    """A 16-bit grey image (``I;16``, little-endian) from any 16-bit or 32-bit integer mode.

    Values are kept, or clipped into 0-65535 (a resampled ``I`` image); ``info`` is kept.
    Pillow's own ``convert("I;16")`` from ``I;16B``/``I;16L``/``I;16N`` garbles the values
    (Pillow 13), so the pixels go through numpy, which knows the byte order.
    """
    if image.mode == "I;16":
        return image
    values = np.asarray(image)
    if values.dtype.kind != "u" or values.dtype.itemsize != 2:
        values = np.clip(values, 0, 65535)
    narrow = Image.fromarray(values.astype(np.uint16))
    narrow.info = dict(image.info)
    return narrow
