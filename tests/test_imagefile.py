"""Decoding (bombs, drafts, EXIF, bad data, animations) and writing every mode."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from creevey_dask import (
    ImageDecodeError,
    ImageTooLargeError,
    Pipeline,
    ops,
    resize_multiple_files,
)
from creevey_dask.exceptions import DownloadTimeoutError, SizeLimitError, UnsafeSourceError
from creevey_dask.image.imagefile import (
    DRAFT_ORIGINAL_SIZE_KEY,
    ImageLoader,
    ImageWriter,
    convert_for_format,
    decode_image,
    estimate_row_bytes,
    load_image,
    to_8bit,
)

ALL_MODES = ("1", "L", "LA", "P", "P+t", "RGB", "RGBA", "CMYK", "I;16", "I", "YCbCr")
FORMATS = ("JPEG", "PNG", "WEBP")

# What each mode becomes in each format (after decoding the written file).
EXPECTED_MODES = {
    "JPEG": {"1": "L", "L": "L", "LA": "L", "P": "RGB", "P+t": "RGB", "RGB": "RGB",
             "RGBA": "RGB", "CMYK": "CMYK", "I;16": "L", "I": "L", "YCbCr": "RGB"},
    "PNG": {"1": "1", "L": "L", "LA": "LA", "P": "P", "P+t": "P", "RGB": "RGB",
            "RGBA": "RGBA", "CMYK": "RGB", "I;16": "I;16", "I": "I;16", "YCbCr": "RGB"},
    "WEBP": {"1": "RGB", "L": "RGB", "LA": "RGBA", "P": "RGB", "P+t": "RGBA", "RGB": "RGB",
             "RGBA": "RGBA", "CMYK": "RGB", "I;16": "RGB", "I": "RGB", "YCbCr": "RGB"},
}  # fmt: skip


def encode(image, fmt="JPEG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ALL_MODES)
def test_writer_converts_every_mode_sensibly(mode, fmt, mode_image, psnr):
    image = mode_image(mode, 48, 32)
    data = ImageWriter(fmt, quality=95).encode(image, fmt)
    back = decode_image(data, f"x.{fmt}")
    assert back.format == fmt
    assert back.size == (48, 32)
    assert back.mode == EXPECTED_MODES[fmt][mode]
    if fmt == "PNG" and mode in ("I;16", "I"):  # 16 bits survive
        assert np.array_equal(np.asarray(back).astype(np.int64), np.asarray(image).astype(np.int64))
    if fmt == "PNG" and mode in ("L", "LA", "RGB", "RGBA"):  # lossless
        assert np.array_equal(np.asarray(back.convert(image.mode)), np.asarray(image))
    if mode == "I;16" and fmt == "JPEG":  # scaled to 8 bits, not clipped to white
        assert psnr(back, mode_image("L", 48, 32)) > 35


def test_alpha_is_flattened_onto_white_for_jpeg_and_kept_for_png_and_webp():
    image = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 10, 20))
    jpeg = decode_image(ImageWriter("jpeg", quality=95).encode(image, "JPEG"))
    assert jpeg.mode == "RGB"
    assert all(
        abs(a - b) < 8 for a, b in zip(jpeg.getpixel((15, 10)), (255, 255, 255), strict=True)
    )
    assert all(abs(a - b) < 8 for a, b in zip(jpeg.getpixel((3, 10)), (0, 0, 255), strict=True))
    for fmt in ("PNG", "WEBP"):
        back = decode_image(ImageWriter(fmt).encode(image, fmt))
        assert back.mode == "RGBA"
        assert back.getpixel((15, 10))[3] == 0
        assert back.getpixel((3, 10))[3] == 255


def test_convert_for_format_keeps_storable_modes_untouched(mode_image):
    rgb = mode_image("RGB")
    assert convert_for_format(rgb, "JPEG") is rgb
    rgba = mode_image("RGBA")
    assert convert_for_format(rgba, "PNG") is rgba
    assert convert_for_format(rgba, "WEBP") is rgba


def test_writer_falls_back_for_other_formats(mode_image):
    for mode in ALL_MODES:
        for fmt in ("GIF", "BMP", "TIFF"):
            data = ImageWriter(fmt).encode(mode_image(mode), fmt)
            assert decode_image(data).size == (40, 30)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_quality(fmt, photo, psnr):
    image = photo(200, 150, seed=1)
    low = ImageWriter(fmt, quality=10).encode(image, fmt)
    high = ImageWriter(fmt, quality=95).encode(image, fmt)
    assert len(low) < len(high)
    assert psnr(decode_image(high), image) > psnr(decode_image(low), image)


def test_writer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="quality must be an int from 1 to 100"):
        ImageWriter("jpeg", quality=0)
    with pytest.raises(ValueError, match="is not one Pillow can write; choose from"):
        ImageWriter("heic")


def test_writer_records_sha256_of_the_written_bytes(image_files, tmp_path):
    writer = ImageWriter("png", record_sha256=True)
    assert writer.result_columns == {"sha256": "string", "out_bytes": "Int64"}
    assert ImageWriter("png").result_columns == {}
    result = Pipeline(load_image, ops=[ops.flip_horiz], write_func=writer).run(
        pd.DataFrame({"path": image_files}),
        lambda p: str(tmp_path / "out" / (p.rsplit("/", 1)[-1] + ".png")),
        inpath_col="path",
        progress=False,
    )
    assert (result["status"] == "ok").all()
    assert str(result["sha256"].dtype) == "string"
    rows = zip(result["outpath"], result["sha256"], result["out_bytes"], strict=True)
    for outpath, digest, size in rows:
        with open(outpath, "rb") as f:
            data = f.read()
        assert digest == hashlib.sha256(data).hexdigest()
        assert size == len(data)
    assert pickle.loads(pickle.dumps(writer)).record_sha256


# -- bad data ----------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(bad_images, bad_image_specs):
    phrases = {name: phrase for name, (_, _, phrase) in bad_image_specs.items()}
    for name, path in bad_images.items():
        with pytest.raises(ImageDecodeError) as info:
            load_image(path)
        message = str(info.value)
        assert phrases[name] in message, message
        assert repr(path) in message
        assert "\n" not in message


def test_bomb_is_refused_from_the_header_with_a_configurable_limit(photo):
    data = encode(photo(40, 30), "PNG")
    with pytest.raises(
        ImageTooLargeError, match=r"40 x 30 = 1,200 pixels, more than max_pixels=1,000"
    ):
        decode_image(data, max_pixels=1000)
    assert decode_image(data, max_pixels=1200).size == (40, 30)
    with pytest.raises(ImageTooLargeError, match="max_pixels=10"):
        ImageLoader(max_pixels=10)(_write(data))
    with pytest.raises(ValueError, match="max_pixels must be a positive int or None"):
        ImageLoader(max_pixels=0)


def _write(data, suffix=".png"):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as f:
        f.write(data)
    return f.name


def test_pillow_bomb_warning_never_leaks(png_header_only):
    """Between Pillow's warning and error limits (89M-179M pixels) Pillow warns in open()."""
    data = png_header_only(10_000, 10_000)  # 100 M pixels
    with pytest.raises(ImageTooLargeError, match="100,000,000 pixels"):
        decode_image(data)  # filterwarnings=error: a leaked warning would fail differently
    # allowed explicitly (pixels and the row's memory budget): the header passes, and
    # then the missing pixel data is an error
    with pytest.raises(ImageDecodeError, match="corrupt PNG data"):
        decode_image(data, max_pixels=None, max_row_bytes=None)
    with pytest.raises(ImageDecodeError, match="corrupt PNG data"):
        decode_image(png_header_only(20_000, 20_000), max_pixels=500_000_000, max_row_bytes=None)


def test_unsupported_formats_are_named():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40
    with pytest.raises(ImageDecodeError, match="ISO media file of brand 'heic'"):
        decode_image(heic, "x.heic")
    with pytest.raises(ImageDecodeError, match="a PDF document"):
        decode_image(b"%PDF-1.4\n%binary", "x.jpg")
    with pytest.raises(ImageDecodeError, match="an HTML page"):
        decode_image(b"<!DOCTYPE html><html></html>", "x.jpg")


def test_corrupt_png_data_is_an_error(photo):
    good = encode(photo(64, 48, seed=2), "PNG")
    idat = good.index(b"IDAT")
    length = int.from_bytes(good[idat - 4 : idat], "big")
    bad_crc = bytearray(good)
    bad_crc[idat + 4 + length] ^= 0xFF  # the IDAT chunk's CRC; the pixel data is intact
    with pytest.raises(ImageDecodeError, match="corrupt PNG data: bad CRC in the IDAT chunk"):
        decode_image(bytes(bad_crc), "x.png")
    bad_data = bytearray(good)
    for i in range(idat + 8, idat + 40):
        bad_data[i] ^= 0x55
    with pytest.raises(ImageDecodeError, match="corrupt PNG data"):
        decode_image(bytes(bad_data), "x.png")
    assert decode_image(good).size == (64, 48)


# -- animations ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_give_their_first_frame(fmt):
    frames = [Image.new("RGB", (30, 20), colour) for colour in ("red", "lime", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decode_image(data)
    assert getattr(image, "n_frames", 1) == 3
    assert image.size == (30, 20)
    r, g, b = image.convert("RGB").getpixel((5, 5))
    assert (r, g, b) > (200, 0, 0)
    assert max(g, b) < 50
    out = ops.resize(shape=(10, 15))(image)
    assert ImageWriter("png").encode(out, "PNG")


# -- EXIF orientation ------------------------------------------------------------------------
def exif_jpeg(image, orientation, quality=95):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif, quality=quality)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation, photo, psnr):
    data = exif_jpeg(photo(64, 40, seed=orientation), orientation)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    image = decode_image(data)
    assert image.size == reference.size == ((40, 64) if orientation >= 5 else (64, 40))
    assert psnr(image, reference) == float("inf")
    raw = decode_image(data, exif_transpose=False)
    assert raw.size == (64, 40)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_draft_respects_exif_orientation(orientation, photo, psnr):
    data = exif_jpeg(photo(1600, 1000, seed=3), orientation)
    op = ops.resize(shape=(100, 60), mode="cover")  # (height, width): portrait
    full = op(decode_image(data))
    drafted_input = decode_image(data, draft=op.draft_size)
    swapped = orientation >= 5
    # cover needs 1.25 x (60, 100) of the crop: 1/8 scale either way
    assert drafted_input.size == ((125, 200) if swapped else (200, 125))
    assert drafted_input.info[DRAFT_ORIGINAL_SIZE_KEY] == (
        (1000, 1600) if swapped else (1600, 1000)
    )
    drafted = op(drafted_input)
    assert drafted.size == full.size == (60, 100)
    assert DRAFT_ORIGINAL_SIZE_KEY not in drafted.info
    assert psnr(drafted, full) >= 35


# -- reduced decoding -------------------------------------------------------------------------
DRAFT_OPS = [
    ops.resize(shape=(128, 128), mode="cover"),
    ops.resize(shape=(100, 150)),
    ops.resize(shape=(120, 120), mode="pad"),
    ops.resize(shape=(120, 120), mode="contain"),
    ops.resize(min_dim=90),
    ops.resize(max_dim=200),
    ops.resize(shape=(64, 64), mode="cover", resample="lanczos"),
]


_JPEGS: dict[tuple[int, int], bytes] = {}


@pytest.mark.parametrize("op", DRAFT_OPS, ids=repr)
@pytest.mark.parametrize("size", [(1280, 960), (2400, 1800), (1001, 667), (700, 1900)])
def test_draft_decode_matches_full_decode(op, size, photo, psnr):
    if size not in _JPEGS:  # made once per size: big photos are slow to make
        _JPEGS[size] = encode(photo(*size, seed=size[0]), "JPEG", quality=92)
    data = _JPEGS[size]
    full_input = decode_image(data)
    drafted_input = decode_image(data, draft=op.draft_size)
    request = op.draft_size(size)
    if request is not None:
        assert drafted_input.width >= request[0]
        assert drafted_input.height >= request[1]
    full, drafted = op(full_input), op(drafted_input)
    assert drafted.size == full.size == op.output_size(size)
    assert psnr(drafted, full) >= 35


def test_draft_decodes_less(photo):
    data = encode(photo(2400, 1800), "JPEG")
    op = ops.resize(shape=(100, 100), mode="cover")
    assert decode_image(data, draft=op.draft_size).size == (300, 225)
    assert decode_image(data, draft=(1200, 900)).size == (1200, 900)
    assert decode_image(data, draft=(1201, 900)).size == (2400, 1800)
    png = encode(photo(400, 300), "PNG")  # only JPEG drafts
    assert decode_image(png, draft=(100, 75)).size == (400, 300)


def test_loader_gets_the_draft_hint_from_the_pipeline(tmp_path, photo, psnr):
    source = tmp_path / "big.jpg"
    source.write_bytes(encode(photo(2000, 1500, seed=9), "JPEG", quality=95))
    assert ImageLoader.accepts_draft
    op = ops.resize(max_dim=100)
    pipeline = Pipeline(ImageLoader(), ops=[op, ops.report_size])
    decoded = pipeline.load(str(source))
    assert decoded.size == (250, 188)  # 1/8 scale: the smallest at least 1.25 x (100, 75)
    result = pipeline.run([str(source)], lambda p: str(tmp_path / "out.png"), progress=False)
    assert result["status"].tolist() == ["ok"]
    assert (result["width"].iloc[0], result["height"].iloc[0]) == (100, 75)
    assert psnr(Image.open(tmp_path / "out.png"), op(decode_image(source.read_bytes()))) >= 35


def test_loader_on_memory_filesystem(memfs, photo):
    memfs.pipe_file("/pics/a.jpg", encode(photo(40, 30)))
    image = ImageLoader()("memory://pics/a.jpg")
    assert image.size == (40, 30)
    assert pickle.loads(pickle.dumps(ImageLoader(max_pixels=5))).max_pixels == 5


# -- every mode, every format, values checked (Pillow 13) --------------------------------

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
#: Every mode Pillow decodes to or an op can make, with "P+t" a palette with transparency.
EVERY_MODE = (
    "1", "L", "P", "P+t", "PA", "RGB", "RGBA", "RGBX", "RGBa", "LA", "La",
    "CMYK", "YCbCr", "LAB", "HSV", "I", "F", *SIXTEEN_BIT,
)  # fmt: skip
#: "original": the format such an image comes in (TIFF holds most modes; a palette with
#: transparency comes as PNG). Modes only ops make (HSV, La, RGBa, PA, ...) go to TIFF too.
ORIGINAL = {"P+t": "PNG"}


def mode_source(mode: str, width: int = 48, height: int = 32) -> Image.Image:
    """A smooth image in ``mode`` whose every value is known."""
    y, x = np.mgrid[0:height, 0:width]
    if mode in SIXTEEN_BIT or mode == "I":  # the full 16-bit range, not just 8-bit steps
        values = x * (65535 - 7 * (height - 1)) // (width - 1) + y * 7  # 0 to 65535
        if mode == "I":
            return Image.fromarray(values.astype(np.int32))
        dtype = {"I;16B": ">u2", "I;16L": "<u2"}.get(mode, "=u2")
        return Image.frombytes(mode, (width, height), values.astype(dtype).tobytes())
    if mode == "F":  # 0-1 floats
        return Image.fromarray((x / (width - 1) * (y + 1) / height).astype(np.float32))
    rgb = np.stack(
        [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)],
        -1,
    ).astype(np.uint8)
    alpha = Image.fromarray((255 - y * 255 // (height - 1)).astype(np.uint8))
    image = Image.fromarray(rgb, "RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        base = image.convert("L") if mode in ("LA", "La") else image
        base = base.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "PA" else base
        image = base.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, mode))
        image.putalpha(alpha)
        return image.convert(mode)
    if mode in ("P", "P+t"):
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=128)
        if mode == "P+t":
            image.info["transparency"] = image.getpixel((0, 0))
        return image
    return image.convert(mode)


def as_8bit_rgb(image: Image.Image) -> Image.Image:
    """How an image should look in 8-bit RGB: 16-bit by its high byte (``>> 8``), ``I``
    by ``// 257`` (its values exceed 255), ``F`` 0-1 by ``* 255``, alpha over white."""
    mode = image.mode
    if mode in SIXTEEN_BIT or mode in ("I", "F"):
        values = np.asarray(image).astype(np.float64)
        if mode in SIXTEEN_BIT:
            grey = values.astype(np.uint32) >> 8
        elif mode == "I":
            grey = values // 257
        else:
            grey = np.rint(values * 255)
        return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
    if mode in ("La", "RGBa"):
        image = image.convert("LA" if mode == "La" else "RGBA")
    if image.mode in ("LA", "RGBA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "original"])
@pytest.mark.parametrize("mode", EVERY_MODE)
def test_every_mode_is_written_in_every_format_with_its_values(mode, fmt, psnr):
    image = mode_source(mode)
    fmt = ORIGINAL.get(mode, "TIFF") if fmt == "original" else fmt
    data = ImageWriter(fmt, quality=95).encode(image, fmt)
    back = decode_image(data, f"x.{fmt}")
    assert back.format == fmt
    assert back.size == image.size
    source = np.asarray(image)
    if mode in SIXTEEN_BIT and fmt in ("PNG", "TIFF"):  # 16 bits kept, byte order too
        assert back.mode in SIXTEEN_BIT
        assert np.array_equal(np.asarray(back).astype(np.int64), source.astype(np.int64))
    elif mode == "I" and fmt == "PNG":  # as 16-bit (the values fit)
        assert back.mode == "I;16"
        assert np.array_equal(np.asarray(back).astype(np.int64), source.astype(np.int64))
    elif mode in ("I", "F") and fmt == "TIFF":  # TIFF holds 32-bit ints and floats
        assert back.mode == mode
        assert np.array_equal(np.asarray(back), source)
    elif fmt in ("PNG", "TIFF"):  # lossless: exactly the 8-bit RGB rendering
        assert np.array_equal(np.asarray(as_8bit_rgb(back)), np.asarray(as_8bit_rgb(image)))
    else:  # lossy: close to it; 16-bit and float greys scaled, not clipped to white
        assert psnr(as_8bit_rgb(back), as_8bit_rgb(image)) > 30


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", None])
def test_a_16_bit_tiff_file_is_resized_into_every_format(tmp_path, mode, fmt):
    # a grayscale 16-bit TIFF file, as medical and scientific imaging make, end to end
    from creevey_dask import resize_multiple_files

    image = mode_source(mode, 64, 40)
    source = tmp_path / "scan.tif"
    image.save(source, format="TIFF")
    with Image.open(source) as opened:
        assert opened.mode == mode
    kwargs = {} if fmt is None else {"format": fmt}  # None: the original format (TIFF)
    result = resize_multiple_files(
        [str(source)], (20, 32), str(tmp_path / "out"), progress=False, **kwargs
    )
    assert result["status"].tolist() == ["ok"], result["error"].tolist()
    outpath = result["outpath"].iloc[0]
    with Image.open(outpath) as back:
        back.load()
        assert back.size == (32, 20)
        assert back.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", None: "TIFF"}[fmt]
        # the expected pixels: Pillow's resize of the 16-bit values, then as_8bit_rgb
        expected = ops.resize((20, 32))(decode_image(source.read_bytes()))
        if fmt in ("png", None):  # 16 bits kept
            assert back.mode in SIXTEEN_BIT
            got = np.asarray(back).astype(np.int64)
            assert np.abs(got - np.asarray(expected).astype(np.int64)).max() <= 1
        else:
            assert psnr_of(as_8bit_rgb(back), as_8bit_rgb(expected)) > 30


def psnr_of(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_a_write_cut_short_by_the_disk_is_an_error_row_not_a_truncated_ok(tmp_path):
    """A full disk (here: RLIMIT_FSIZE, which cuts the write short the same way) during
    the last write of an output must give an error row, never a truncated file marked ok
    nor another image (a disk error must not be taken for a mode the format cannot hold)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import os, resource, signal
        import numpy as np
        from PIL import Image
        from creevey_dask import Pipeline, load_image
        from creevey_dask.image.imagefile import ImageWriter

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        rng = np.random.default_rng(0)
        src = {str(tmp_path)!r} + "/noise.png"
        Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(src)
        grey16 = {str(tmp_path)!r} + "/grey16.png"
        Image.fromarray(rng.integers(300, 65535, (120, 120), dtype=np.uint16)).save(grey16)
        for source, fmt in [(src, "jpeg"), (src, "bmp"), (src, "tiff"), (src, "png"),
                            (grey16, "png")]:
            with Image.open(source) as image:
                full = len(ImageWriter(fmt).encode(image, fmt))
            out = {str(tmp_path)!r} + "/out-" + fmt + "-" + os.path.basename(source)
            resource.setrlimit(resource.RLIMIT_FSIZE, (full - 100, resource.RLIM_INFINITY))
            try:
                result = Pipeline(load_image, write_func=ImageWriter(fmt)).run(
                    [source], lambda s: out + "/img." + fmt, progress=False
                )
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            row = result.iloc[0]
            left = sorted(os.listdir(out)) if os.path.isdir(out) else []
            print(fmt, row["status"], left)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split("\n")
    assert out[:5] == [
        "jpeg error []",
        "bmp error []",
        "tiff error []",
        "png error []",
        "png error []",
    ]


@pytest.mark.parametrize(
    "data", [b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00", b"\xff\xd8\xff\xc0\x00\x11"]
)
def test_a_jpeg_cut_inside_its_header_is_an_image_decode_error(data):
    with pytest.raises(ImageDecodeError, match=r"cannot decode 'cut\.jpg'"):
        decode_image(data, "cut.jpg")


# -- every input bounded: file type, size, deadline ---------------------------------------


@pytest.mark.timeout(60)
def test_a_fifo_named_like_an_image_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "stuck.jpg"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeSourceError, match="FIFO"):
        load_image(str(fifo))
    result = resize_multiple_files([str(fifo)], (8, 8), tmp_path / "out", progress=False)
    assert result["status"].tolist() == ["error"]
    assert result["error"].iloc[0].startswith("UnsafeSourceError: ")
    assert not (tmp_path / "out" / "stuck.jpg").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.timeout(60)
def test_a_device_is_refused_by_its_type_before_any_read():
    with pytest.raises(UnsafeSourceError, match="character device"):
        load_image("/dev/zero")


def test_a_local_file_over_max_bytes_is_refused_by_its_size(tmp_path):
    sparse = tmp_path / "huge.jpg"
    with open(sparse, "wb") as f:
        f.truncate(2 * 2**30)  # 2 GiB, sparse: nothing of it need be read to refuse it
    with pytest.raises(SizeLimitError, match="max_bytes=1,073,741,824"):
        load_image(str(sparse))
    small = tmp_path / "small.jpg"
    small.write_bytes(encode(Image.new("RGB", (20, 10))))
    with pytest.raises(SizeLimitError, match="max_bytes=100"):
        ImageLoader(max_bytes=100)(str(small))
    assert ImageLoader(max_bytes=100_000)(str(small)).size == (20, 10)


def test_an_fsspec_file_over_max_bytes_is_refused(memfs):
    memfs.pipe_file("/pics/a.jpg", encode(Image.new("RGB", (20, 10))))
    with pytest.raises(SizeLimitError, match="max_bytes=10"):
        ImageLoader(max_bytes=10)("memory://pics/a.jpg")
    memfs.mkdir("/pics/folder.jpg")
    with pytest.raises((UnsafeSourceError, FileNotFoundError)):
        load_image("memory://pics/folder.jpg")


def test_a_read_past_the_deadline_stops(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(3 * 2**20))  # three chunks to read
    with pytest.raises(DownloadTimeoutError, match="deadline of 1e-09 s"):
        ImageLoader(deadline=1e-9)(str(path))


# -- a memory budget per row ----------------------------------------------------------------


def _ico_around(png: bytes) -> bytes:
    """An ICO whose one entry (declared 256 x 256, as all may be) holds ``png``."""
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def test_an_ico_is_checked_before_pillow_decodes_it_and_outside_the_open_lock(
    png_header_only,
):
    from creevey_dask.image import decode as imagefile

    data = _ico_around(png_header_only(12_000, 12_000))
    refused: list[BaseException] = []

    def decode() -> None:
        try:
            decode_image(data, "hostile.ico")
        except ImageTooLargeError as err:
            refused.append(err)

    with imagefile._open_lock:  # another row holding the lock: this one is not held up
        thread = threading.Thread(target=decode)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()
    assert "inside the ICO declares 12000 x 12000 = 144,000,000 pixels" in str(refused[0])
    # under max_pixels but over the memory budget: refused by the budget, also before open
    with pytest.raises(ImageTooLargeError, match="max_row_bytes=536,870,912"):
        decode_image(_ico_around(png_header_only(9_000, 9_000)))


def test_a_row_over_its_memory_budget_is_an_error_row_naming_the_budget(tmp_path):
    source = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (1000, 1000), (10, 20, 30, 40)).save(source, "JPEG")
    need = estimate_row_bytes("CMYK", (1000, 1000), data_bytes=source.stat().st_size)
    with pytest.raises(ImageTooLargeError, match=r"max_row_bytes=5,000,000 \(5 MiB\)"):
        decode_image(source.read_bytes(), max_row_bytes=5_000_000)
    assert decode_image(source.read_bytes(), max_row_bytes=need).mode == "CMYK"
    pipeline = Pipeline(ImageLoader(max_row_bytes=5_000_000), write_func=ImageWriter("png"))
    result = pipeline.run([str(source)], lambda p: str(tmp_path / "out.png"), progress=False)
    assert result["status"].tolist() == ["error"]
    assert result["error"].iloc[0].startswith("ImageTooLargeError: ")
    assert "max_row_bytes=5,000,000" in result["error"].iloc[0]
    assert not (tmp_path / "out.png").exists()


def test_the_budget_counts_a_resize_at_its_target_size(tmp_path):
    """With a downscaling first op the conversion and encoding are of the small image."""
    data = encode(Image.new("RGB", (4000, 3000)))
    full = estimate_row_bytes("RGB", (4000, 3000), data_bytes=len(data))
    with pytest.raises(ImageTooLargeError):
        decode_image(data, max_row_bytes=full - 1)
    assert decode_image(data, draft=(400, 300), max_row_bytes=full - 1).size == (500, 375)


_PEAK = """
import sys
import numpy as np
from PIL import Image
from creevey_dask.image.imagefile import to_8bit
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
mode = sys.argv[1]
side = 4000
if mode == "F":
    image = Image.fromarray(np.linspace(0, 1, side * side, dtype=np.float32).reshape(side, side))
else:
    image = Image.fromarray(np.arange(side * side, dtype=np.uint16).reshape(side, side))
image.load()
before = hwm()
out = to_8bit(image)
print((hwm() - before) / (side * side), out.mode)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
@pytest.mark.parametrize("mode", ["F", "I;16"])
def test_8bit_conversion_makes_no_full_size_float_copies(mode):
    """Peak memory of the conversion above the decoded image, per pixel, in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, mode], capture_output=True, text=True, check=True
    )
    per_pixel, out_mode = proc.stdout.split()
    assert out_mode == "L"
    # the 8-bit result is 1 byte a pixel; one float64 copy alone would be 8
    assert float(per_pixel) < 2.5


def test_8bit_conversion_in_bands_keeps_the_values():
    rng = np.random.default_rng(3)
    array = rng.uniform(-0.2, 1.0, size=(2100, 700)).astype(np.float32)  # several bands
    array[5, 5], array[6, 6], array[7, 7] = np.nan, np.inf, -np.inf
    got = np.asarray(to_8bit(Image.fromarray(array, "F")))
    # inf (in one band) makes the peak huge, so every band is scaled 0-255, not 0-1
    finite = np.clip(np.rint(np.nan_to_num(array.astype(np.float64))), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(got, finite)
    array[6, 6] = array[7, 7] = 0.5
    expected = np.clip(np.rint(np.nan_to_num(array.astype(np.float64)) * 255), 0, 255)
    got = np.asarray(to_8bit(Image.fromarray(array, "F")))
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    big = rng.integers(0, 65536, size=(2100, 700), dtype=np.uint16)
    got16 = np.asarray(to_8bit(Image.fromarray(big)))
    np.testing.assert_array_equal(got16, (big >> 8).astype(np.uint8))


def test_rows_in_flight_are_bounded_by_memory_too(tmp_path, monkeypatch, overlap):
    """Four rows allowed at once by count, but the process's memory fits two at a time."""
    from creevey_dask.image import decode as imagefile

    sources = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (300, 200), (i, 0, 0)).save(path)
        sources.append(str(path))
    need = max(
        estimate_row_bytes("RGB", (300, 200), data_bytes=os.path.getsize(s)) for s in sources
    )
    monkeypatch.setattr(imagefile, "_gate", imagefile._MemoryGate(2 * need + need // 2))

    def hold(image):
        with overlap:
            return image

    pipeline = Pipeline(load_image, ops=[hold], write_func=ImageWriter("png"))
    result = pipeline.run(
        sources, lambda p: p.replace(".png", "-out.png"), n_jobs=4, progress=False
    )
    assert result["status"].tolist() == ["ok"] * 4
    assert overlap.most == 2
    assert imagefile._gate.in_use == 0  # every row gave its reservation back
    assert decode_image(Path(sources[0]).read_bytes()).size == (300, 200)  # outside a run
    assert imagefile._gate.in_use == 0
