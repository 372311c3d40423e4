"""Keras answers to the parameter questions of :mod:`gradsight.inspect` (behind the Backend protocol).

Layouts are converted to PyTorch's so that the code above sees one: dense weights
``(out, in)`` (Keras keeps ``(in, out)``), conv kernels ``(O, I, kH, kW)`` (Keras keeps
``(kH, kW, I, O)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import keras
import numpy as np

from .capture import wrap_call

__all__ = ["dense_layers", "dense_params", "conv_layers", "conv_kernel", "weights", "record_inputs"]


def _np(v: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32)


def _layers(model: keras.Model) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every leaf layer, depth first through nested models (``outer/inner``)."""
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(m: keras.Model, prefix: str) -> None:
        for layer in m.layers:
            if id(layer) in seen or isinstance(layer, keras.layers.InputLayer):
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.Model):
                walk(layer, f"{prefix}{layer.name}/")
            else:
                out.append((f"{prefix}{layer.name}", layer))

    walk(model, "")
    return out


def dense_layers(model: keras.Model) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every ``Dense`` layer, in the model's layer order."""
    return [(p, lay) for p, lay in _layers(model) if isinstance(lay, keras.layers.Dense)]


def dense_params(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (out, in), bias (out,))``; a missing bias is zeros."""
    w = _np(layer.kernel).T
    b = _np(layer.bias) if layer.bias is not None else np.zeros(w.shape[0], np.float32)
    return w, b


def conv_layers(model: keras.Model) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every ``Conv2D`` layer, in the model's layer order."""
    return [(p, lay) for p, lay in _layers(model) if isinstance(lay, keras.layers.Conv2D)]


def conv_kernel(layer: Any) -> np.ndarray:
    """The kernels as ``(O, I, kH, kW)``."""
    return _np(layer.kernel).transpose(3, 2, 0, 1)


def weights(model: keras.Model) -> list[tuple[str, str, np.ndarray, bool]]:
    """``(layer path, weight name, values, trainable)`` for every weight of every layer."""
    return [
        (path, v.name, _np(v), bool(v.trainable))
        for path, layer in _layers(model)
        for v in layer.weights
    ]


@contextmanager
def record_inputs(layers: list[tuple[str, Any]]) -> Iterator[list[tuple[str, Any]]]:
    """Record ``(path, first input)`` of each call of ``layers``, in call order.

    The Keras analogue of a forward-pre-hook: ``Layer.__call__`` looks ``call`` up on the
    instance, so an instance attribute shadows it for the block; it is deleted (or the
    previous one put back) on exit, whatever happens.
    """
    seen: list[tuple[str, Any]] = []

    def recorder(path: str) -> Callable[[Callable], Callable]:
        def make(call: Callable) -> Callable:
            def recording(*args: Any, **kwargs: Any) -> Any:
                seen.append((path, args[0] if args else kwargs.get("inputs")))
                return call(*args, **kwargs)

            return recording

        return make

    with ExitStack() as stack:
        for path, layer in layers:
            stack.enter_context(wrap_call(layer, recorder(path)))
        yield seen
