"""A run's summary: the one-line report, the counts and the commonest error causes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from ..exceptions import error_cause
from ..schema import (
    STATUSES,
)

if TYPE_CHECKING:
    pass


__all__ = ["error_causes", "summarize", "summary_line"]

logger = logging.getLogger(__name__)


def error_causes(errors: pd.Series, top: int = 3) -> list[tuple[str, int]]:
    """The ``top`` most common causes among error texts, with their counts.

    Errors are grouped by :func:`error_cause`: a row that failed because an earlier
    step failed counts under that step's error, and messages that differ only in a
    path, a byte count or a size are one cause. Ties are broken alphabetically, so the
    answer does not depend on row order.

    Examples
    --------
    >>> errors = pd.Series([
    ...     "HttpError: HTTP 404 Not Found",
    ...     "UpstreamError: the previous step failed: HttpError: HTTP 404 Not Found",
    ...     "ImageDecodeError: the response (image/jpeg) is truncated (7 bytes not processed)",
    ...     "ImageDecodeError: the response (image/jpeg) is truncated (12 bytes not processed)",
    ...     None,
    ... ])
    >>> error_causes(errors)
    [('HttpError: HTTP 404 Not Found', 2), ('ImageDecodeError: the response (image/jpeg) is truncated (N bytes not processed)', 2)]
    """  # noqa: E501
    causes = errors.dropna().astype(str).map(error_cause).value_counts()
    ranked = sorted(((str(c), int(n)) for c, n in causes.items()), key=lambda cn: (-cn[1], cn[0]))
    return ranked[:top]


def summary_line(result: pd.DataFrame, elapsed: float, *, top: int = 3) -> str:
    """One line on a finished run: rows by status, images written and per second, top causes.

    Rows and images are told apart: ``images/s`` counts the images this run wrote
    (``ok`` rows), not the rows it looked at.

    Parameters
    ----------
    result : pandas.DataFrame
        A result table (with ``status`` and ``error``).
    elapsed : float
        The run's wall-clock seconds.
    top : int, default 3
        How many error causes (see :func:`error_causes`) to name, each cut to 80
        characters.

    Examples
    --------
    >>> result = pd.DataFrame({
    ...     "status": ["ok", "ok", "ok", "error"],
    ...     "error": [None, None, None, "HttpError: HTTP 404 Not Found"],
    ... })
    >>> summary_line(result, 2.0)
    'creevey: 4 rows in 2.0 s: 3 ok, 0 skipped, 1 error; 3 images written (1.5 images/s); top errors: 1 x HttpError: HTTP 404 Not Found'
    """  # noqa: E501
    counts = result["status"].value_counts()
    written = int(counts.get("ok", 0))
    rate = f"{written / elapsed:.1f}" if elapsed > 0 else "-"
    line = f"creevey: {len(result)} rows in {elapsed:.1f} s: " + ", ".join(
        f"{int(counts.get(s, 0))} {s}" for s in STATUSES
    )
    line += f"; {written} images written ({rate} images/s)"
    causes = error_causes(result.loc[result["status"] == "error", "error"], top)
    if causes:
        shown = [cause if len(cause) <= 80 else cause[:79] + "…" for cause, _ in causes]
        line += "; top errors: " + "; ".join(
            f"{n} x {cause}" for cause, (_, n) in zip(shown, causes, strict=True)
        )
    return line


def summarize(result: pd.DataFrame, *, top: int = 5) -> dict[str, int]:
    """Log counts by status and the most common error causes (see :func:`error_causes`);
    warn when most rows failed.

    Returns the counts by status.
    """
    counts = {s: int(n) for s, n in result["status"].value_counts().items()}
    total = len(result)
    errors = counts.get("error", 0)
    logger.info(
        "creevey: %d rows: %s", total, ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
    )
    causes = error_causes(result.loc[result["status"] == "error", "error"], top)
    for cause, n in causes:
        logger.info("  %6d x %s", n, cause)
    if total and errors / total > 0.5:
        logger.warning(
            "creevey: %d of %d rows (%.0f%%) failed; the most common cause: %s",
            errors,
            total,
            100 * errors / total,
            causes[0][0],
        )
    return counts
