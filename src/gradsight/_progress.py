"""Progress of long computations inside one call, for whoever shows it (the CLI's bars).

A method reports ``report(what, done, total)`` as it goes (SmoothGrad: noisy copies
done out of ``samples``); nothing happens unless a caller installed a callback with
``with reporting(callback):``. The callback lives in a context variable, so threads
and the library's users see nothing of another caller's bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["report", "reporting"]

Callback = Callable[[str, int, int], None]

_callback: ContextVar[Callback | None] = ContextVar("gradsight_progress", default=None)


def report(what: str, done: int, total: int) -> None:
    """``done`` of ``total`` steps of ``what`` are finished."""
    cb = _callback.get()
    if cb is not None:
        cb(what, done, total)


@contextmanager
def reporting(callback: Callback) -> Iterator[None]:
    """Within the block, :func:`report` calls ``callback(what, done, total)``."""
    token = _callback.set(callback)
    try:
        yield
    finally:
        _callback.reset(token)
