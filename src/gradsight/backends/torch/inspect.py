"""PyTorch answers to the parameter questions of :mod:`gradsight.inspect` (behind the Backend protocol).

Which layers are dense or conv layers, their
weights as numpy in one layout (dense ``(out, in)``, conv ``(O, I, kH, kW)``), every
weight tensor, and the *input* of a layer (the penultimate features are the input of
the final classifier layer, which need not be any module's output).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from .capture import hooked

__all__ = ["dense_layers", "dense_params", "conv_layers", "conv_kernel", "weights", "record_inputs"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32, copy=True).numpy()  # a copy: never a view of live weights


def dense_layers(model: nn.Module) -> list[tuple[str, Any]]:
    """``(name, module)`` of every ``nn.Linear``, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def dense_params(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (out, in), bias (out,))``; a missing bias is zeros."""
    w = _np(layer.weight)
    b = _np(layer.bias) if layer.bias is not None else np.zeros(w.shape[0], np.float32)
    return w, b


def conv_layers(model: nn.Module) -> list[tuple[str, Any]]:
    """``(name, module)`` of every 2-D convolution, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def conv_kernel(layer: nn.Conv2d) -> np.ndarray:
    """The kernels as ``(O, I, kH, kW)`` (``I`` is in_channels / groups)."""
    return _np(layer.weight)


def weights(model: nn.Module) -> list[tuple[str, str, np.ndarray, bool]]:
    """``(layer, name, values, trainable)`` for every parameter and floating-point buffer, module by module.

    Buffers (BatchNorm running statistics) are listed as not trainable, so that a
    model and its Keras twin (where they are non-trainable weights) list the same
    tensors in the same order.
    """
    rows = []
    seen: set[int] = set()  # a tensor shared by two modules is listed once, under the first
    for layer, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                rows.append((layer, name, _np(p), bool(p.requires_grad)))
        for name, b in module.named_buffers(recurse=False):
            if b is not None and b.is_floating_point() and id(b) not in seen:
                seen.add(id(b))
                rows.append((layer, name, _np(b), False))
    return rows


@contextmanager
def record_inputs(modules: list[tuple[str, nn.Module]]) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Record ``(name, first positional input)`` of each call of ``modules``, in call order.

    A forward-pre-hook sees the input before the module runs; it is copied, so that an
    in-place op later in the forward pass cannot change what was recorded.
    """
    seen: list[tuple[str, torch.Tensor]] = []

    def hook_for(name: str) -> Any:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen.append((name, args[0].detach().clone()))

        return hook

    with hooked(modules, hook_for, pre=True):
        yield seen
