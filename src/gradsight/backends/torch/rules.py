"""Backward rules for PyTorch rectifiers, however they are written.

A :class:`~torch.overrides.TorchFunctionMode` sees every ``nn.ReLU`` / ``nn.LeakyReLU``
module (they call ``F.relu`` / ``F.leaky_relu``), every functional call (``F.relu``,
``torch.relu``, ``Tensor.relu``, the in-place ``relu_`` forms, ``F.leaky_relu``) and every
call of a module that is reused in one forward. Module hooks would miss the functional
calls; this does not. Only calls made while the model's own forward runs are changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ...rules import Rule, RuleReport, RuleSwitch

__all__ = ["RuleReport", "apply_rule"]

# func -> (kind, in-place?, position of the slope argument or None)
_RECTIFIERS: dict[Any, tuple[str, bool | None, int | None]] = {
    F.relu: ("relu", None, None),  # in-place decided by its `inplace` argument
    torch.relu: ("relu", False, None),
    torch.Tensor.relu: ("relu", False, None),
    torch.relu_: ("relu", True, None),
    torch.Tensor.relu_: ("relu", True, None),
    F.leaky_relu: ("leaky_relu", None, 1),
    torch._C._nn.leaky_relu: ("leaky_relu", False, 1),
    torch._C._nn.leaky_relu_: ("leaky_relu", True, 1),
}

# Activations the rules do not cover: they keep their plain gradient, and the user is told.
_OTHER_ACTIVATIONS = frozenset(
    "hardtanh hardtanh_ relu6 gelu prelu elu elu_ selu selu_ celu celu_ silu mish hardswish "
    "softplus rrelu rrelu_ threshold threshold_".split()
)


class _RectifierRule(torch.autograd.Function):
    """Forward: the rectifier as usual (in place when asked). Backward: the rule.

    Keeps what autograd's own ReLU / LeakyReLU keep (the output, which the next layer
    holds anyway; LeakyReLU's input when not in place) and multiplies by f'(x) with the
    kernels autograd's own backward uses, so a rule costs no mask and no extra pass.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, slope: float, inplace: bool, rule: Rule | RuleSwitch) -> torch.Tensor:
        # sign(f(x)) == sign(x) unless the slope is negative; an in-place LeakyReLU with a
        # negative slope overwrites x, so only that case keeps a mask, taken first.
        # Plain kernels, unseen by any other rule mode: a method's rule inside a user's
        # `with gs.backward_rule(...)` block replaces it rather than nesting within it.
        with torch._C.DisableTorchFunction():
            mask = x > 0 if slope < 0.0 and inplace else None
            if slope == 0.0:
                out = torch.relu_(x) if inplace else torch.relu(x)
            else:
                out = torch._C._nn.leaky_relu_(x, slope) if inplace else torch._C._nn.leaky_relu(x, slope)
        if inplace:
            ctx.mark_dirty(x)
        if mask is not None:
            ctx.save_for_backward(mask)
            ctx.kept = "mask"
        elif slope == 0.0 or inplace:
            ctx.save_for_backward(out)
            ctx.kept = "result"
        else:
            ctx.save_for_backward(x)
            ctx.kept = "input"
        ctx.slope, ctx.rule = slope, rule
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (kept,) = ctx.saved_tensors
        slope, how = ctx.slope, ctx.kept

        def dmul(t: torch.Tensor) -> torch.Tensor:  # t * f'(x)
            if slope == 0.0:
                return torch.ops.aten.threshold_backward(t, kept, 0)
            if how == "mask":
                return t * torch.where(kept, 1.0, slope).to(t.dtype)
            return torch.ops.aten.leaky_relu_backward(t, kept, slope, how == "result")

        def f(t: torch.Tensor) -> torch.Tensor:
            return torch.relu(t) if slope == 0.0 else torch._C._nn.leaky_relu(t, slope)

        return ctx.rule.backward(g, dmul, f, torch.relu), None, None, None


def _arg(args: tuple, kwargs: dict, pos: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else default


class _RuleMode(TorchFunctionMode):
    # Per thread, like torch's mode stack: the modes entered and not yet left.
    _local = threading.local()

    @classmethod
    def active(cls) -> list[_RuleMode]:
        if not hasattr(cls._local, "modes"):
            cls._local.modes = []
        return cls._local.modes

    def __init__(self, report: RuleReport) -> None:
        super().__init__()
        self.report = report
        self.depth = 0  # > 0 while the model's own forward runs

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self.depth > 0:
            spec = _RECTIFIERS.get(func)
            if spec is not None:
                kind, inplace, slope_pos = spec
                x = args[0] if args else kwargs["input"]
                if isinstance(x, torch.Tensor) and x.is_floating_point():
                    if inplace is None:
                        inplace = bool(_arg(args, kwargs, 2 if slope_pos else 1, "inplace", False))
                    slope = float(_arg(args, kwargs, slope_pos, "negative_slope", 0.01)) if slope_pos else 0.0
                    self.report.overridden[kind] += 1
                    for outer in _RuleMode.active():
                        if outer is not self and outer.depth > 0:
                            outer.report.superseded[kind] += 1
                    return _RectifierRule.apply(x, slope, inplace, self.report.rule)
            elif getattr(func, "__name__", None) in _OTHER_ACTIVATIONS:
                self.report.unsupported[func.__name__] += 1
        return func(*args, **kwargs)


@contextmanager
def apply_rule(model: torch.nn.Module, rule: Rule | RuleSwitch) -> Iterator[RuleReport]:
    """Within the block, rectifiers called by ``model``'s forward back-propagate by ``rule``.

    Yields a :class:`RuleReport`. The model is not modified, beyond two hooks on its root
    module that are removed on exit.
    """
    report = RuleReport(rule)
    mode = _RuleMode(report)

    def enter(*_: Any) -> None:
        mode.depth += 1

    def leave(*_: Any) -> None:
        mode.depth -= 1

    pre = model.register_forward_pre_hook(enter)
    post = model.register_forward_hook(leave, always_call=True)
    try:
        with mode:
            _RuleMode.active().append(mode)
            try:
                yield report
            finally:
                _RuleMode.active().remove(mode)
    finally:
        pre.remove()
        post.remove()
