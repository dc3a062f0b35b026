"""Progress reporting for long single transfers (a download, an extraction).

The datasets module reports progress through fsspec's :class:`~fsspec.callbacks.Callback`
interface, so that a user can pass ``progress=True`` for a tqdm bar, ``False`` for none,
or any ``Callback`` of their own (a notebook widget, a logger, a test probe).
"""

from __future__ import annotations

from typing import TypeAlias

from fsspec.callbacks import Callback, NoOpCallback, TqdmCallback

__all__ = ["Progress", "make_callback"]

#: What a ``progress=`` argument accepts.
Progress: TypeAlias = bool | Callback


def make_callback(progress: Progress, desc: str, unit: str = "B") -> Callback:
    """Turn a ``progress=`` argument into a callback.

    Parameters
    ----------
    progress : bool or fsspec.callbacks.Callback
        ``True`` for a tqdm bar on stderr, ``False`` for none, or a callback to use as is.
    desc : str
        The label of the bar.
    unit : str
        ``"B"`` for bytes (scaled to kB, MB, ...), anything else is shown as is.
    """
    if isinstance(progress, Callback):
        return progress
    if not isinstance(progress, bool):
        raise TypeError(
            f"progress must be True, False or an fsspec.callbacks.Callback, not {progress!r}"
        )
    if not progress:
        return NoOpCallback()
    kwargs: dict[str, object] = {"desc": desc, "unit": unit, "leave": False}
    if unit == "B":
        kwargs.update(unit_scale=True, unit_divisor=1024)
    return TqdmCallback(tqdm_kwargs=kwargs)
