"""Forward passes repeated at one input shape run as a ``tf.function``.

Score-CAM's C x N masked forwards, the clean forwards of SmoothGrad and Integrated
Gradients, ``gs.predict`` in a loop: the same model, output selection and input shape,
many times. Eager Keras is 2-3x slower than a traced call for ResNet-50 at 8 x 224^2
(measured in this repository's benchmarks), but tracing costs seconds, so a key is traced
only at its second call; a model that cannot be traced stays eager (the eager call
raises any real error).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import ExitStack
from typing import Any

import keras
import tensorflow as tf

from ..base import LayerRef, Settings
from ..outputs import check_tensors, select_output
from .capture import PATCHING, capture_layer, named_layers
from .models import strip_softmax
from .primitives import training_flag
from .structure import Structure
from .trace import forward as eager_forward

__all__ = ["forward", "forward_with_activation"]

MAX_ENTRIES = 8
_CACHE: weakref.WeakKeyDictionary[keras.Model, OrderedDict[Hashable, Any]] = weakref.WeakKeyDictionary()
_STRUCTURE = Structure()  # a model whose layers changed since its last call has its traces dropped


class _Body:
    """What ``tf.function`` traces (holds the model weakly: the cache is keyed by it)."""

    def __init__(self, model: keras.Model, output: Any, settings: Settings) -> None:
        self.model = weakref.ref(model)
        self.output, self.settings = output, settings

    def __call__(self, x: tf.Tensor) -> Any:
        return eager_forward(self.model(), x, self.output, self.settings)


def eager_forward_with_activation(
    model: keras.Model, x: tf.Tensor, layer: LayerRef, call: int, output: Any, settings: Settings
) -> tuple[Any, tf.Tensor, str]:
    """(selected output, the layer's output at its call-th call, layer name) from one forward pass."""
    with PATCHING, ExitStack() as stack:
        if settings.logits:  # before the capture, which then records the stripped model's layer
            stack.enter_context(strip_softmax(model))
        cap = stack.enter_context(capture_layer(model, layer))
        outputs = select_output(settings.call(model, x, training=training_flag(settings)), output)
    activation, name = cap.get(call)
    return check_tensors(outputs, tf.is_tensor), activation, name


class _CaptureBody:
    def __init__(self, model: keras.Model, layer: LayerRef, call: int, output: Any, settings: Settings) -> None:
        self.model = weakref.ref(model)
        self.args = (layer.without_obj(), call, output, settings)  # the cache must not hold the model's layers
        self.name = ""

    def __call__(self, x: tf.Tensor) -> tuple[Any, tf.Tensor]:
        outputs, activation, self.name = eager_forward_with_activation(self.model(), x, *self.args)
        return outputs, activation


def _cached(
    model: keras.Model, key: Hashable, settings: Settings, x: tf.Tensor, make: Callable[[], Any],
    eager: Callable[[], Any], layers: list[keras.layers.Layer] | None = None,
) -> tuple[Any, Any]:
    """``(None, eager())`` at a key's first call (and for untraceable models), ``(entry, traced make())`` from its second.

    Calls with ``forward_args`` / ``forward_kwargs`` stay eager: a traced function would freeze them.
    """
    if settings.forward_args or settings.forward_kwargs:
        return None, eager()
    entries = _CACHE.setdefault(model, OrderedDict())
    if not _STRUCTURE.same(model, [lay for _, lay in named_layers(model)] if layers is None else layers):
        entries.clear()
    entry = entries.get(key)
    if entry is None or entry == "eager":
        if entry is None:
            entries[key] = "seen"
            while len(entries) > MAX_ENTRIES:
                entries.popitem(last=False)
        return None, eager()
    if entry == "seen":
        entry = entries[key] = make()
    entries.move_to_end(key)
    try:
        return entry, entry[0](x)
    except Exception:  # noqa: BLE001 - not traceable (e.g. .numpy() in call): eager from now on
        entries[key] = "eager"
        return None, eager()


def _compile(body: Any, x: tf.Tensor) -> tuple[Any, Any]:
    return tf.function(body, input_signature=[tf.TensorSpec(x.shape, x.dtype)], autograph=False), body


def _output_key(output: Any) -> Hashable:
    return tuple(output) if isinstance(output, list) else output


def forward(
    model: keras.Model, x: tf.Tensor, output: Any, settings: Settings, layers: list[keras.layers.Layer] | None = None
) -> Any:
    """The selected output for ``x``: eagerly at a key's first call, traced from its second
    (``layers``: the model's layers now, walked here when None; see :mod:`.structure`)."""
    key = ("forward", _output_key(output), settings, tuple(x.shape), x.dtype.name)
    _, out = _cached(model, key, settings, x, lambda: _compile(_Body(model, output, settings), x),
                     lambda: eager_forward(model, x, output, settings), layers)
    return out


def forward_with_activation(
    model: keras.Model, x: tf.Tensor, layer: LayerRef, call: int, output: Any, settings: Settings
) -> tuple[Any, tf.Tensor, str]:
    """:func:`eager_forward_with_activation`, traced from a key's second call."""
    key = ("capture", layer.without_obj(), call, _output_key(output), settings, tuple(x.shape), x.dtype.name)
    entry, out = _cached(
        model, key, settings, x, lambda: _compile(_CaptureBody(model, layer, call, output, settings), x),
        lambda: eager_forward_with_activation(model, x, layer, call, output, settings),
    )
    if entry is None:
        result: tuple[Any, tf.Tensor, str] = out
        return result
    outputs, activation = out
    return outputs, activation, entry[1].name
