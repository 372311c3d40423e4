"""PyTorch models whose forward ends in a softmax or log-softmax: warn, or explain the logits.

A :class:`~torch.overrides.TorchFunctionMode` records every softmax / log-softmax call of
the forward (``nn.Softmax``, ``nn.LogSoftmax``, ``F.softmax``, ``F.log_softmax``,
``torch.softmax``, ``Tensor.softmax``, ...) with its input; a forward hook on the root
module compares the model's output with the last recorded result. When they are the
same tensor the model "ends in a softmax", and with ``logits=True`` the hook returns the
recorded *input* of that call instead: the pre-softmax scores, still part of the
autograd graph. Nothing in the model is changed; the hook is removed on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ...errors import ModelError, SaturationWarning, warn
from ..saturation import saturation_message

__all__ = ["final_softmax", "softmax_session"]

_SOFTMAX = {
    F.softmax: "softmax",
    F.log_softmax: "log_softmax",
    torch.softmax: "softmax",
    torch.log_softmax: "log_softmax",
    torch.Tensor.softmax: "softmax",
    torch.Tensor.log_softmax: "log_softmax",
    torch.special.softmax: "softmax",
    torch.special.log_softmax: "log_softmax",
}


@dataclass
class _Record:
    kind: str
    inputs: torch.Tensor
    output: torch.Tensor


class _SoftmaxMode(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[_Record] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = _SOFTMAX.get(func)
        if kind is not None and isinstance(out, torch.Tensor):
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor):
                self.records = [_Record(kind, x, out)]  # only the last call matters
        return out


def _module_name(model: torch.nn.Module, kind: str) -> str:
    """Describe the final softmax: the last nn.Softmax/LogSoftmax module if there is one, else the function."""
    cls = torch.nn.LogSoftmax if kind == "log_softmax" else torch.nn.Softmax
    names = [n for n, m in model.named_modules() if isinstance(m, cls)]
    return f"{cls.__name__} {names[-1]!r}" if names else f"a final F.{kind}"


@contextmanager
def softmax_session(model: torch.nn.Module, logits: bool) -> Iterator[None]:
    """Inside the block, ``model(x)`` returns its pre-softmax scores (``logits=True``), or warns once
    (:class:`SaturationWarning`) when its output comes from a final softmax / log-softmax.

    With ``logits=True`` and a forward that does not end in one, calling the model raises
    :class:`ModelError`.
    """
    mode = _SoftmaxMode() if logits else None
    found: list[str] = []  # warned on leaving the block, so that the warning points at the user's line

    def hook(module: Any, args: Any, output: Any) -> Any:
        if mode is not None:
            last = mode.records[-1] if mode.records else None
            mode.records = []
            if last is None or output is not last.output:
                raise ModelError(
                    "logits=True explains the scores before a final softmax or log-softmax; this "
                    f"{type(model).__name__}'s forward does not end in one (its output is not the result of the "
                    "last softmax/log_softmax call). Drop logits=True."
                )
            return last.inputs
        fn = getattr(output, "grad_fn", None)  # free: no recording needed to warn
        kind = {"SoftmaxBackward0": "softmax", "LogSoftmaxBackward0": "log_softmax"}.get(type(fn).__name__)
        if kind is not None and not found:
            found.append(_module_name(model, kind))
        return None

    handle = model.register_forward_hook(hook)
    try:
        if mode is None:
            yield
        else:
            with mode:
                yield
    finally:
        handle.remove()
    if found:
        warn(saturation_message(found[0]), SaturationWarning)


def final_softmax(model: torch.nn.Module, x: torch.Tensor) -> str | None:
    """What the model's output comes from when its forward ends in a softmax / log-softmax, else None.

    Runs one forward pass on ``x`` without gradients (call inside the backend's session).
    """
    mode = _SoftmaxMode()
    with torch.no_grad(), mode:
        out = model(x)
    last = mode.records[-1] if mode.records else None
    if last is None or out is not last.output:
        return None
    return _module_name(model, last.kind)
