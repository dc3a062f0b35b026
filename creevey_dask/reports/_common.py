"""What the contact sheets and the summary figures share: colours, argument checks, the
kind of a row's error."""

from __future__ import annotations

from typing import Any, TypeAlias

import dask.dataframe as dd
import numpy as np
import pandas as pd

from ..exceptions import UpstreamError

Frame: TypeAlias = pd.DataFrame | dd.DataFrame

_BACKGROUND = (255, 255, 255)
_STATUS_COLORS = {"ok": (60, 150, 80), "skipped": (90, 120, 170), "error": (200, 60, 50)}
_ERROR_BARS = (200, 60, 50)
_HIST_BARS = (70, 130, 180)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _root_cause(message: Any) -> str:
    """The error a row's failure started with (an UpstreamError gives the earlier error)."""
    if message is None or pd.isna(message):
        return ""
    return UpstreamError.root_cause(" ".join(str(message).split()))


def _error_kind(message: Any) -> str:
    """The exception type of the root cause, e.g. ``"HttpError"``."""
    return _root_cause(message).split(":", 1)[0].strip()
