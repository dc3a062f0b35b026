"""Small charts drawn with Pillow only: fonts, fitted text, bar charts and histograms.

The building blocks of :mod:`creevey_dask.reports.sheets`. Each drawing function fills one
rectangular panel ``box = (left, top, right, bottom)`` of an ``ImageDraw``: a title,
labelled axes, and the counts written on the bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from PIL import ImageDraw, ImageFont

__all__ = [
    "Font",
    "draw_hbars",
    "draw_histogram",
    "draw_vbars",
    "fit_text",
    "format_number",
    "line_height",
    "resolve_font",
]

Font: TypeAlias = ImageFont.ImageFont | ImageFont.FreeTypeFont | ImageFont.TransposedFont
Box: TypeAlias = tuple[int, int, int, int]
RGB: TypeAlias = tuple[int, int, int]

TEXT: RGB = (30, 30, 30)
MUTED: RGB = (110, 110, 110)
AXIS: RGB = (90, 90, 90)
GRID: RGB = (225, 225, 225)
ELLIPSIS = "…"


def resolve_font(font: Font | int | None, default_size: int) -> Font:
    """The font to draw with: ``font`` itself, or Pillow's default font at a size.

    ``None`` means Pillow's bundled default font at ``default_size`` pixels, an int
    that size. No font file is read from anywhere else.
    """
    if font is None or isinstance(font, int):
        size = default_size if font is None else font
        if isinstance(size, bool) or size < 6:
            raise ValueError(f"a font size must be an int >= 6, got {font!r}")
        return ImageFont.load_default(size=size)
    if not hasattr(font, "getbbox"):
        raise TypeError(
            f"font must be a PIL ImageFont, a size in pixels or None, got {type(font).__name__}"
        )
    return font


def line_height(font: Font) -> int:
    """Pixels from one line of text to the next with ``font``."""
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return int(ascent + descent)
    return int(font.getbbox("Ag|")[3]) + 2


def text_width(font: Font, text: str) -> float:
    """The advance width of ``text`` in pixels."""
    return float(font.getlength(text))


def fit_text(text: str, font: Font, width: float) -> str:
    """``text``, cut and ended with an ellipsis if it is wider than ``width`` pixels."""
    if text_width(font, text) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_width(font, text[:mid] + ELLIPSIS) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + ELLIPSIS if lo or text_width(font, ELLIPSIS) <= width else ""


def format_number(value: float) -> str:
    """A short label for an axis or a bar: ``950``, ``1.2k``, ``3.4M``, ``0.25``."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            scaled = value / limit
            text = f"{scaled:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def _title(draw: ImageDraw.ImageDraw, box: Box, title: str, font: Font) -> int:
    """Draw a panel title at the top of ``box``; return the y below it."""
    left, top, right, _ = box
    draw.text((left, top), fit_text(title, font, right - left), font=font, fill=TEXT)
    return top + line_height(font) + 4


def _message(draw: ImageDraw.ImageDraw, box: Box, text: str, font: Font) -> None:
    left, top, right, bottom = box
    text = fit_text(text, font, right - left)
    x = left + (right - left - text_width(font, text)) / 2
    y = top + (bottom - top - line_height(font)) / 2
    draw.text((x, y), text, font=font, fill=MUTED)


def draw_vbars(
    draw: ImageDraw.ImageDraw,
    box: Box,
    labels: Sequence[str],
    values: Sequence[int],
    colors: Sequence[RGB],
    font: Font,
    title: str,
) -> None:
    """Vertical bars with their counts above them and their labels below the axis."""
    left, _, right, bottom = box
    top = _title(draw, box, title, font)
    lh = line_height(font)
    plot_top, plot_bottom = top + lh + 2, bottom - lh - 4
    draw.line([(left, plot_bottom), (right, plot_bottom)], fill=AXIS, width=1)
    if not labels or plot_bottom - plot_top < 4:
        return
    peak = max(max(values), 1)
    slot = (right - left) / len(labels)
    bar = max(slot * 0.6, 1)
    for i, (label, value, color) in enumerate(zip(labels, values, colors, strict=True)):
        x0 = left + i * slot + (slot - bar) / 2
        y0 = min(plot_bottom - (plot_bottom - plot_top) * value / peak, plot_bottom - 1)
        if value:
            draw.rectangle([x0, y0, x0 + bar, plot_bottom - 1], fill=color)
        count = format_number(value)
        draw.text(
            (x0 + (bar - text_width(font, count)) / 2, y0 - lh - 1), count, font=font, fill=TEXT
        )
        name = fit_text(str(label), font, slot - 2)
        draw.text(
            (left + i * slot + (slot - text_width(font, name)) / 2, plot_bottom + 3),
            name,
            font=font,
            fill=TEXT,
        )


def draw_hbars(
    draw: ImageDraw.ImageDraw,
    box: Box,
    labels: Sequence[str],
    values: Sequence[int],
    color: RGB,
    font: Font,
    title: str,
    empty: str = "nothing to show",
) -> None:
    """Horizontal bars, largest first: labels on the left, counts at the bar ends."""
    left, _, right, bottom = box
    top = _title(draw, box, title, font)
    if not labels:
        _message(draw, (left, top, right, bottom), empty, font)
        return
    lh = line_height(font)
    label_width = min(
        max(text_width(font, str(label)) for label in labels) + 6, 0.45 * (right - left)
    )
    count_width = max(text_width(font, format_number(v)) for v in values) + 6
    axis_x = left + label_width
    row = min((bottom - top) / len(labels), 2.2 * lh)
    bar_height = max(min(row * 0.7, row - 2), 1)
    peak = max(max(values), 1)
    span = max(right - axis_x - count_width, 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        name = fit_text(str(label), font, label_width - 6)
        draw.text(
            (axis_x - 6 - text_width(font, name), y + (bar_height - lh) / 2),
            name,
            font=font,
            fill=TEXT,
        )
        length = span * value / peak
        if value:
            draw.rectangle([axis_x, y, axis_x + length, y + bar_height], fill=color)
        draw.text(
            (axis_x + length + 4, y + (bar_height - lh) / 2),
            format_number(value),
            font=font,
            fill=TEXT,
        )
    draw.line([(axis_x, top), (axis_x, top + len(labels) * row)], fill=AXIS, width=1)


def draw_histogram(
    draw: ImageDraw.ImageDraw,
    box: Box,
    edges: Sequence[float],
    counts: Sequence[int],
    color: RGB,
    font: Font,
    title: str,
    xlabel: str,
) -> None:
    """A histogram: contiguous bars, the y axis from 0 to the largest count, the x axis
    labelled with the first, middle and last bin edges and titled ``xlabel``."""
    left, _, right, bottom = box
    top = _title(draw, box, title, font)
    lh = line_height(font)
    peak = max(max(counts, default=0), 1)
    ytick = format_number(peak)
    axis_x = left + text_width(font, ytick) + 6
    plot_top, plot_bottom = top + lh // 2, bottom - 2 * lh - 6
    if plot_bottom - plot_top < 4 or not counts:
        _message(draw, (left, top, right, bottom), "no values", font)
        return
    plot_right = right - 4
    for y, label in ((plot_top, ytick), (plot_bottom, "0")):
        draw.line([(axis_x, y), (plot_right, y)], fill=GRID if y == plot_top else AXIS)
        draw.text((axis_x - 4 - text_width(font, label), y - lh / 2), label, font=font, fill=MUTED)
    width = (plot_right - axis_x) / len(counts)
    for i, count in enumerate(counts):
        if count:
            y0 = min(plot_bottom - (plot_bottom - plot_top) * count / peak, plot_bottom - 1)
            x0 = axis_x + i * width
            draw.rectangle([x0, y0, max(x0 + width - 1, x0), plot_bottom - 1], fill=color)
    draw.line([(axis_x, plot_top), (axis_x, plot_bottom)], fill=AXIS)
    middle = len(counts) // 2
    ticks = [(0, edges[0]), (middle, edges[middle]), (len(counts), edges[-1])]
    for position, value in ticks:
        label = format_number(float(value))
        x = axis_x + position * width - text_width(font, label) / 2
        x = min(max(x, left), right - text_width(font, label))
        draw.text((x, plot_bottom + 3), label, font=font, fill=MUTED)
    name = fit_text(xlabel, font, plot_right - axis_x)
    draw.text(
        (axis_x + (plot_right - axis_x - text_width(font, name)) / 2, plot_bottom + lh + 5),
        name,
        font=font,
        fill=TEXT,
    )
