"""The image ops: sizes, pixels against plain Pillow, every mode, validation, pickling."""

from __future__ import annotations

import io
import operator
import pickle

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from creevey_dask import Pipeline, load_image, ops
from creevey_dask.image.imagefile import ImageWriter, decode_image

LANCZOS = Image.Resampling.LANCZOS  # ops.resize's default filter
ALL_MODES = ("1", "L", "LA", "P", "P+t", "RGB", "RGBA", "CMYK", "I;16", "I", "YCbCr")

# op, expected output size for a 40 x 30 input
OPS_AND_SIZES = [
    (ops.resize(shape=(16, 20)), (20, 16)),
    (ops.resize(shape=(16, 16), mode="cover"), (16, 16)),
    (ops.resize(shape=(16, 16), mode="pad"), (16, 16)),
    (ops.resize(shape=(16, 16), mode="contain"), (16, 12)),
    (ops.resize(min_dim=15), (20, 15)),
    (ops.resize(max_dim=20), (20, 15)),
    (ops.resize(shape=(60, 80), only_shrink=True), (40, 30)),
    (ops.trim_bottom(10), (40, 20)),
    (ops.crop((5, 5, 25, 15)), (20, 10)),
    (ops.centercrop(0.5), (20, 15)),
    (ops.trim_padding(operator.gt, 0.99), (40, 30)),
    (ops.grayscale, (40, 30)),
    (ops.flip_horiz, (40, 30)),
    (ops.flip_vert, (40, 30)),
    (ops.rotate_90, (30, 40)),
    (ops.rotate_180, (40, 30)),
    (ops.rotate_270, (30, 40)),
    (ops.exif_transpose, (40, 30)),
]
OP_IDS = [
    getattr(op, "__name__", None) or repr(op).split(", only_shrink")[0] for op, _ in OPS_AND_SIZES
]


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize(("op", "size"), OPS_AND_SIZES, ids=OP_IDS)
def test_every_op_on_every_mode_writes_to_every_format(op, size, mode, mode_image):
    image = mode_image(mode)
    out = op(image)
    assert out.size == size
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = ImageWriter(fmt, quality=90).encode(out, fmt)
        back = Image.open(io.BytesIO(data))
        back.load()
        assert back.size == size
        assert back.format == fmt


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "YCbCr"])
def test_resize_keeps_modes_pillow_resamples(mode, mode_image):
    image = mode_image(mode, 80, 60)
    out = ops.resize(shape=(30, 40))(image)
    assert out.mode == mode
    reference = image.resize((40, 30), LANCZOS)
    assert np.array_equal(np.asarray(out), np.asarray(reference))


@pytest.mark.parametrize(("mode", "expected"), [("1", "L"), ("P", "RGB"), ("P+t", "RGBA")])
def test_resize_filters_palette_and_bilevel_images_properly(mode, expected, mode_image):
    image = mode_image(mode, 80, 60)
    out = ops.resize(shape=(30, 40))(image)
    assert out.mode == expected
    reference = image.convert(expected).resize((40, 30), LANCZOS)
    assert np.array_equal(np.asarray(out), np.asarray(reference))


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (333, 333), (1001, 377), (50, 700)])
@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("cover", lambda im, wh: ImageOps.fit(im, wh, LANCZOS)),
        ("fit", lambda im, wh: ImageOps.fit(im, wh, LANCZOS)),
        ("contain", lambda im, wh: ImageOps.contain(im, wh, LANCZOS)),
        ("pad", lambda im, wh: ImageOps.pad(im, wh, LANCZOS, color=0)),
        ("stretch", lambda im, wh: im.resize(wh, LANCZOS)),
    ],
)
def test_resize_modes_match_pillow_imageops(size, mode, reference, photo, psnr):
    image = photo(*size, seed=sum(size))
    op = ops.resize(shape=(120, 160), mode=mode, reducing_gap=None)
    out = op(image)
    expected = reference(image, (160, 120))
    assert out.size == expected.size == op.output_size(size)
    assert psnr(out, expected) > 60


def test_reducing_gap_stays_close_to_a_one_step_resample(photo, psnr):
    image = photo(1600, 1200, seed=1)
    fast = ops.resize(shape=(100, 100), mode="cover")(image)
    exact = ImageOps.fit(image, (100, 100), LANCZOS)
    assert psnr(fast, exact) >= 40


@pytest.mark.parametrize(
    ("kwargs", "inputs_and_sizes"),
    [
        (
            {"min_dim": 100},
            [((640, 480), (133, 100)), ((480, 640), (100, 133)), ((50, 40), (125, 100))],
        ),
        (
            {"max_dim": 100},
            [((640, 480), (100, 75)), ((480, 640), (75, 100)), ((1001, 3), (100, 1))],
        ),
        ({"min_dim": 100, "only_shrink": True}, [((640, 480), (133, 100)), ((50, 40), (50, 40))]),
        ({"max_dim": 100, "only_shrink": True}, [((90, 40), (90, 40))]),
        (
            {"shape": (100, 200), "mode": "cover", "only_shrink": True},
            [((150, 80), (150, 80)), ((400, 90), (200, 90))],
        ),
        ({"shape": (100, 200), "mode": "pad", "only_shrink": True}, [((150, 80), (200, 100))]),
        ({"shape": (100, 200), "mode": "contain", "only_shrink": True}, [((150, 80), (150, 80))]),
        (
            {"shape": (100, 200), "only_shrink": True},
            [((150, 80), (150, 80)), ((400, 90), (200, 90))],
        ),
    ],
)
def test_resize_output_sizes(kwargs, inputs_and_sizes, photo):
    op = ops.resize(**kwargs)
    for in_size, out_size in inputs_and_sizes:
        assert op(photo(*in_size)).size == out_size
        assert op.output_size(in_size) == out_size


def test_min_dim_keeps_aspect_like_the_original_creevey(photo, psnr):
    out = ops.resize(min_dim=64)(photo(300, 200))
    assert out.size == (96, 64)
    assert psnr(out, photo(300, 200).resize((96, 64), LANCZOS)) > 40


def test_pad_centres_a_small_image_when_only_shrinking(photo):
    small = photo(150, 80, seed=3)
    out = ops.resize(shape=(100, 200), mode="pad", only_shrink=True, fill="white")(small)
    assert out.size == (200, 100)
    assert out.crop((25, 10, 175, 90)).tobytes() == small.tobytes()
    assert out.getpixel((100, 5)) == (255, 255, 255)


def test_pad_fills_with_the_fill_colour(photo, mode_image):
    out = ops.resize(shape=(100, 100), mode="pad", fill=(255, 0, 0))(photo(200, 100))
    assert out.getpixel((50, 5)) == (255, 0, 0)
    assert out.getpixel((50, 95)) == (255, 0, 0)
    transparent = ops.resize(shape=(100, 100), mode="pad")(mode_image("RGBA", 200, 100))
    assert transparent.getpixel((50, 5))[3] == 0
    pad_white = ops.resize(shape=(100, 100), mode="pad", fill="white")
    for mode in ("L", "CMYK", "YCbCr", "LA", "I;16"):
        out = pad_white(mode_image(mode, 200, 100))
        assert out.mode == mode
        assert out.convert("RGB").getpixel((50, 5)) == (255, 255, 255), mode
    black = ops.resize(shape=(100, 100), mode="pad")(mode_image("YCbCr", 200, 100))
    assert black.convert("RGB").getpixel((50, 5)) == (0, 0, 0)


@pytest.mark.parametrize(
    "resample", ["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"]
)
def test_every_resample_filter(resample, photo):
    image = photo(90, 60)
    out = ops.resize(shape=(30, 45), resample=resample, reducing_gap=None)(image)
    assert np.array_equal(
        np.asarray(out), np.asarray(image.resize((45, 30), ops.RESAMPLE_FILTERS[resample]))
    )
    assert (
        ops.resize(shape=(30, 45), resample=Image.Resampling.BOX).resample is Image.Resampling.BOX
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 10)}, r"shape\[0\] \(height\) must be a positive int, got 0"),
        ({"shape": (10, -1)}, r"shape\[1\] \(width\) must be a positive int"),
        ({"shape": (10,)}, r"shape must be \(height, width\)"),
        ({"shape": "10x10"}, r"shape must be \(height, width\)"),
        (
            {"shape": (10, 10), "min_dim": 5},
            r"exactly one of shape=\(height, width\), min_dim= or max_dim=, "
            r"got \['shape', 'min_dim'\]",
        ),
        ({"min_dim": 5, "max_dim": 5}, r"exactly one of"),
        ({}, r"exactly one of .* got none"),
        ({"min_dim": 0}, r"min_dim must be a positive int"),
        ({"max_dim": 2.5}, r"max_dim must be a positive int"),
        (
            {"shape": (10, 10), "mode": "crop"},
            r"mode 'crop' is not one of \['stretch', 'cover', 'fit', 'pad', 'contain'\]",
        ),
        ({"min_dim": 10, "mode": "cover"}, r"mode='cover' applies to shape= only"),
        (
            {"shape": (10, 10), "resample": "cubic"},
            r"resample 'cubic' is not one of "
            r"\['bicubic', 'bilinear', 'box', 'hamming', 'lanczos', 'nearest'\]",
        ),
        ({"shape": (10, 10), "reducing_gap": 0.5}, r"reducing_gap must be a number >= 1.0"),
    ],
)
def test_resize_rejects_bad_arguments_up_front(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.resize(**kwargs)


@pytest.mark.parametrize(
    ("factory", "args", "error", "match"),
    [
        (ops.trim_bottom, (0,), ValueError, "pixels must be a positive int"),
        (ops.crop, ((10, 10, 5, 20),), ValueError, "is empty"),
        (ops.crop, ((0, 0, 5),), ValueError, r"\(left, upper, right, lower\)"),
        (ops.crop, ((-1, 0, 5, 5),), ValueError, "non-negative"),
        (ops.centercrop, (0,), ValueError, r"in \(0, 1\]"),
        (ops.centercrop, (1.5,), ValueError, r"in \(0, 1\]"),
        (ops.trim_padding, ("gt", 0.5), TypeError, "operator.gt"),
        (ops.trim_padding, (operator.gt, 200), ValueError, "from 0 to 1"),
    ],
)
def test_other_ops_reject_bad_arguments(factory, args, error, match):
    with pytest.raises(error, match=match):
        factory(*args)


def test_ops_whose_parameters_do_not_fit_the_image_raise_clearly(photo):
    image = photo(40, 30)
    with pytest.raises(ValueError, match="would remove the whole image of height 30"):
        ops.trim_bottom(30)(image)
    with pytest.raises(ValueError, match=r"extends beyond the image of size 40 x 30"):
        ops.crop((0, 0, 41, 10))(image)
    with pytest.raises(ValueError, match="every pixel"):
        ops.trim_padding(operator.ge, 0.0)(image)


def test_geometric_ops_match_pillow_exactly(photo):
    image = photo(40, 30, seed=5)

    def same(a, b):
        return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))

    assert same(ops.rotate_90(image), image.rotate(90, expand=True))
    assert same(ops.rotate_180(image), image.rotate(180, expand=True))
    assert same(ops.rotate_270(image), image.rotate(270, expand=True))
    assert same(ops.flip_horiz(image), ImageOps.mirror(image))
    assert same(ops.flip_vert(image), ImageOps.flip(image))
    assert same(ops.trim_bottom(7)(image), image.crop((0, 0, 40, 23)))
    assert same(ops.crop((1, 2, 30, 20))(image), image.crop((1, 2, 30, 20)))
    assert same(ops.centercrop(0.5)(image), image.crop((10, 7, 30, 22)))
    assert same(ops.grayscale(image), image.convert("L"))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("1", "L"),
        ("L", "L"),
        ("LA", "LA"),
        ("P", "L"),
        ("P+t", "LA"),
        ("RGB", "L"),
        ("RGBA", "LA"),
        ("CMYK", "L"),
        ("I;16", "L"),
        ("I", "L"),
        ("YCbCr", "L"),
    ],
)
def test_grayscale_modes(mode, expected, mode_image):
    image = mode_image(mode)
    out = ops.grayscale(image)
    assert out.mode == expected
    if mode in ("I;16", "I"):  # 16-bit data is scaled down, not clipped
        assert np.array_equal(np.asarray(out), np.asarray(mode_image("L")))


@pytest.mark.parametrize(
    ("comparison", "thresh", "background"), [(operator.gt, 0.95, 255), (operator.lt, 0.05, 0)]
)
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "I;16"])
def test_trim_padding_removes_near_white_or_black_borders(
    comparison, thresh, background, mode, photo
):
    content = photo(50, 40, seed=2).point(lambda v: 40 + v * 170 // 255)
    canvas = Image.new("RGB", (90, 70), (background,) * 3)
    noise = np.random.default_rng(0).integers(-4, 5, size=(70, 90, 3))
    canvas = Image.fromarray(
        np.clip(np.asarray(canvas).astype(int) + noise, 0, 255).astype(np.uint8)
    )
    canvas.paste(content, (12, 9))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(canvas.convert("L")).astype(np.uint16) * 257)
    else:
        image = canvas.convert(mode)
    out = ops.trim_padding(comparison, thresh)(image)
    assert out.size == (50, 40)
    assert out.mode == image.mode


def test_trim_padding_leaves_unpadded_images_alone(photo):
    image = photo(40, 30)
    assert ops.trim_padding(operator.gt, 0.99)(image) is image


def test_exif_transpose_op(photo):
    image = photo(40, 30, seed=1)
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(buffer, "JPEG", exif=exif, quality=95)
    raw = Image.open(io.BytesIO(buffer.getvalue()))
    raw.load()
    assert raw.size == (40, 30)
    assert ops.exif_transpose(raw).size == (30, 40)
    assert ops.exif_transpose(image) is image


ALL_OPS = [op for op, _ in OPS_AND_SIZES] + [
    ops.report_size,
    ops.report_dhash,
    ops.report_mean_brightness,
    ops.resize(shape=(5, 5), mode="pad", fill=(1, 2, 3), resample="lanczos"),
]


@pytest.mark.parametrize(
    "op", ALL_OPS, ids=[getattr(op, "__name__", None) or repr(op) for op in ALL_OPS]
)
def test_ops_pickle_round_trip(op, photo):
    clone = pickle.loads(pickle.dumps(op))
    image = photo(40, 30, seed=3)
    expected, got = op(image), clone(image)
    assert got.size == expected.size
    assert np.array_equal(np.asarray(got), np.asarray(expected))
    if hasattr(op, "__dict__"):
        assert clone == op or repr(clone) == repr(op)


def test_draft_size():
    cover = ops.resize(shape=(256, 256), mode="cover")
    # at least 1.25 x 256 of the 960 x 960 crop
    assert cover.draft_size((1280, 960)) == (427, 320)
    assert cover.draft_size((2400, 1800)) == (427, 320)
    assert cover.draft_size((400, 300)) is None  # less than 1.25 x the output
    assert cover.draft_size((321, 321)) == (320, 320)  # Pillow can only decode it whole
    assert ops.resize(min_dim=100).draft_size((4000, 3000)) == (167, 125)
    assert ops.resize(max_dim=100).draft_size((4000, 3000)) == (125, 94)
    assert ops.resize(shape=(100, 300)).draft_size((4000, 3000)) == (375, 125)
    assert ops.resize(max_dim=100, only_shrink=True).draft_size((80, 60)) is None


# -- the reduced-decode rule: draft to 1.25 x the output, then one Lanczos -----
def _line_art(width: int, height: int, seed: int) -> Image.Image:
    """Black 1-3 px strokes and text on white, like a diagram or a scanned drawing."""
    from PIL import ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(-300, 300)), y0 + int(rng.integers(-300, 300))
        draw.line((x0, y0, x1, y1), fill="black", width=int(rng.integers(1, 4)))
    for _ in range(5):
        font = ImageFont.load_default(size=int(rng.integers(12, 40)))
        xy = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        draw.text(xy, "Figure 3: the quick brown fox", fill="black", font=font)
    return image


@pytest.mark.parametrize(("kind", "floor"), [("photo", 45.0), ("line art", 33.0)])
@pytest.mark.parametrize("size", [(1280, 960), (2400, 1800), (1001, 667), (700, 1900)])
def test_reduced_decode_keeps_full_decode_quality(kind, floor, size, photo, psnr):
    """Against the reference (full decode, centre crop, Lanczos), the default cover resize
    of a reduced decode stays at full-decode quality; the bare ``draft`` at the target
    (then bicubic) drops line art to 27 dB on the 1001 x 667 case."""
    image = photo(*size, seed=size[0]) if kind == "photo" else _line_art(*size, seed=size[0])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    op = ops.resize(shape=(256, 256), mode="cover")
    full = decode_image(data)
    reference = ImageOps.fit(full, (256, 256), LANCZOS)
    drafted_input = decode_image(data, draft=op.draft_size)
    assert drafted_input.width < full.width  # the rule does decode less
    assert psnr(op(drafted_input), reference) >= floor


def test_mean_brightness(mode_image):
    assert ops.mean_brightness(Image.new("RGB", (4, 4), (255, 255, 255))) == 1.0
    assert ops.mean_brightness(Image.new("L", (4, 4), 0)) == 0.0
    half = ops.mean_brightness(Image.new("L", (4, 4), 128))
    assert half == pytest.approx(128 / 255)
    for mode in ALL_MODES:
        value = ops.mean_brightness(mode_image(mode))
        assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("mode", [m for m in ALL_MODES if m not in ("I;16", "I")])
def test_dhash_equals_imagehash_dhash(photo, mode_image, mode):
    """The same 64 bits as the imagehash package's dhash, so stored hashes interoperate."""
    images = [mode_image(mode, 64, 48, seed=s) for s in range(3)]
    if mode == "RGB":
        images += [photo(300, 200, seed=11), photo(97, 131, seed=5)]
    for image in images:
        theirs = int(str(imagehash.dhash(image)), 16)
        assert ops.dhash(image) == theirs


def test_dhash_finds_near_duplicates(photo, mode_image):
    original = photo(300, 200, seed=11)
    buffer = io.BytesIO()
    original.save(buffer, "JPEG", quality=40)
    recompressed = decode_image(buffer.getvalue())
    smaller = original.resize((150, 100))
    other = original.transpose(Image.Transpose.ROTATE_180)
    h = ops.dhash(original)
    assert 0 <= h < 2**64
    assert ops.hamming(h, ops.dhash(recompressed)) <= 4
    assert ops.hamming(h, ops.dhash(smaller)) <= 4
    assert ops.hamming(h, ops.dhash(other)) >= 20
    for mode in ALL_MODES:
        assert 0 <= ops.dhash(mode_image(mode)) < 2**64


def test_hamming():
    assert ops.hamming(0, 2**64 - 1) == 64
    assert ops.hamming(np.uint64(5), 4) == 1
    with pytest.raises(TypeError, match="non-negative int hash"):
        ops.hamming(-1, 3)
    with pytest.raises(TypeError, match="non-negative int hash"):
        ops.hamming("ab", 3)


def test_reporters_add_typed_result_columns(image_files, tmp_path):
    pipeline = Pipeline(
        load_image,
        ops=[
            ops.resize(shape=(20, 30)),
            ops.report_size,
            ops.report_mean_brightness,
            ops.report_dhash,
        ],
        parallel_strategy="threads",
    )
    paths = [*image_files, str(tmp_path / "missing.png")]
    result = pipeline.run(
        pd.DataFrame({"path": paths}),
        lambda p: str(tmp_path / "out" / p.split("/")[-1].replace(".jpg", ".png")),
        inpath_col="path",
        progress=False,
    )
    assert str(result["width"].dtype) == "Int64"
    assert str(result["height"].dtype) == "Int64"
    assert str(result["mean_brightness"].dtype) == "float64"
    assert str(result["dhash"].dtype) == "UInt64"
    ok = result[result["status"] == "ok"]
    assert len(ok) == 5
    assert (ok["width"] == 30).all()
    assert (ok["height"] == 20).all()
    for path, value in zip(ok["outpath"], ok["dhash"], strict=True):
        assert int(value) == ops.dhash(Image.open(path))
    failed = result[result["status"] == "error"]
    assert failed["width"].isna().all()
    assert failed["dhash"].isna().all()


@pytest.mark.parametrize("shape", [(10, 10), (15, 20), (45, 60)])
def test_resize_big_endian_16_bit_in_memory(shape):
    """An I;16B image made in memory resizes to the values of its I;16 twin (Pillow 13
    refuses to reduce I;16 and garbles I;16B)."""
    values = (np.arange(1200, dtype=np.uint32).reshape(30, 40) * 50).astype(np.uint16)
    big = Image.frombytes("I;16B", (40, 30), values.astype(">u2").tobytes())
    little = Image.fromarray(values)
    out_big, out_little = ops.resize(shape)(big), ops.resize(shape)(little)
    assert out_big.mode == out_little.mode == "I;16"
    assert out_big.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(out_big), np.asarray(out_little))
    as_float = ops.resize(shape)(Image.fromarray(values.astype(np.float32)))
    expected = np.clip(np.asarray(as_float), 0, 65535)  # Lanczos overshoot, clipped
    assert np.abs(np.asarray(out_little).astype(np.float64) - expected).max() <= 1.0


def test_grayscale_and_dhash_of_lab(photo):
    """Pillow has no LAB to L conversion: grey is the lightness channel."""
    rgb = photo(64, 48, seed=3)
    lab = rgb.convert("LAB")
    grey = ops.grayscale(lab)
    assert grey.mode == "L"
    assert np.array_equal(np.asarray(grey), np.asarray(lab)[..., 0])
    assert ops.dhash(lab) == ops.dhash(grey)
    assert ops.hamming(ops.dhash(lab), ops.dhash(rgb)) <= 12  # lightness ~ luma
    assert 0.0 < ops.mean_brightness(lab) < 1.0
