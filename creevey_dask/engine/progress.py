"""Progress: of long single transfers (a download, an extraction) and of runs.

The datasets module reports progress through fsspec's :class:`~fsspec.callbacks.Callback`
interface, so that a user can pass ``progress=True`` for a tqdm bar, ``False`` for none,
or any ``Callback`` of their own (a notebook widget, a logger, a test probe).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from fsspec.callbacks import Callback, NoOpCallback, TqdmCallback

__all__ = [
    "Progress",
    "RunProgress",
    "display_kind",
    "local_callback",
    "make_callback",
    "show_line",
]

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


# --- the progress of a run ------------------------------------------------------------
# A run's bar counts rows (in-memory input) or partitions (a lazy dask result) as its
# partitions finish. Where it shows: a notebook widget when the kernel has ipywidgets,
# else a text bar on stderr (a terminal, a notebook without widgets, a log file); never
# stdout, which is the user's. The display is a convenience: if it fails, the failure is
# logged once and the run goes on without it.

logger = logging.getLogger(__name__)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app is running)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel depends on IPython
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def has_widgets() -> bool:
    """Whether ``ipywidgets`` can be imported here (a notebook bar can be a widget)."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # not installed, or blocked
        return False
    return True


def display_kind() -> str:
    """``"widget"`` in a notebook kernel that has ipywidgets, else ``"text"`` (stderr)."""
    return "widget" if in_notebook() and has_widgets() else "text"


class RunProgress:
    """A bar of a run's progress that never raises: a failed display is logged once.

    Parameters
    ----------
    total : int
        How many ``unit`` the run has.
    unit : str, default "rows"
        What the bar counts.
    enabled : bool, default True
        False: a bar that shows nothing (``progress=False``).
    """

    def __init__(self, total: int, unit: str = "rows", *, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._failed = False
        if enabled:
            self._guard(lambda: self._open(unit))

    def _open(self, unit: str) -> None:
        kwargs: dict[str, Any] = {"total": self.total, "unit": f" {unit}"}
        if display_kind() == "widget":
            from tqdm.notebook import tqdm as notebook_tqdm

            self._bar = notebook_tqdm(**kwargs)
            return
        from tqdm.std import tqdm as text_tqdm

        interactive = bool(getattr(sys.stderr, "isatty", lambda: False)()) or in_notebook()
        # a log file gets a line every 10 s, a terminal or a notebook a live bar
        self._bar = text_tqdm(file=sys.stderr, mininterval=0.1 if interactive else 10.0, **kwargs)

    def _guard(self, action: Callable[[], Any]) -> None:
        if self._failed:
            return
        try:
            action()
        except Exception as err:  # the display is not worth a run
            self._failed = True
            self._bar = None
            logger.warning(
                "creevey: the progress display failed (%s: %s); the run goes on without it",
                type(err).__name__,
                err,
            )

    def update(self, n: int) -> None:
        """``n`` more ``unit`` are done."""
        self.done += n
        if self._bar is not None:
            self._guard(lambda: self._bar.update(n))

    def close(self) -> None:
        """Close the bar (it stays on screen)."""
        if self._bar is not None:
            self._guard(self._bar.close)
            self._bar = None

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_warned: list[bool] = []


def show_line(text: str) -> None:
    """Print ``text`` on stderr for the person at the keyboard; never raises.

    A stderr that cannot be written to (closed, a broken pipe) is logged once per
    process, and the run goes on.
    """
    try:
        print(text, file=sys.stderr, flush=True)
    except Exception as err:  # a line on screen is not worth a run
        if not _warned:
            _warned.append(True)
            logger.warning("creevey: cannot write to stderr (%s: %s)", type(err).__name__, err)


def local_callback(progress: RunProgress, sizes: Mapping[Any, int]) -> Any:
    """A dask callback that moves ``progress`` on as the tasks keyed in ``sizes`` finish.

    ``sizes`` maps a task key to how many units its finishing counts for (a partition's
    rows, or 1); a key not in it counts nothing. For dask's local schedulers.
    """
    from dask.callbacks import Callback as DaskCallback

    class _Posttask(DaskCallback):  # type: ignore[misc]
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            n = sizes.get(key)
            if n:
                progress.update(n)

    return _Posttask()
