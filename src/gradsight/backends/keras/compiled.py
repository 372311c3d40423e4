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
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import keras
import tensorflow as tf

from ...targets import select_output
from .capture import PATCHING, capture, capture_auto, chosen
from .models import strip_softmax
from .trace import forward as eager_forward

__all__ = ["forward", "forward_with_activation"]

MAX_ENTRIES = 8
_CACHE: weakref.WeakKeyDictionary[keras.Model, OrderedDict] = weakref.WeakKeyDictionary()


class _Body:
    """What ``tf.function`` traces (holds the model weakly: the cache is keyed by it)."""

    def __init__(self, model: keras.Model, output: Any, training: bool | None, logits: bool) -> None:
        self.model = weakref.ref(model)
        self.output, self.training, self.logits = output, training, logits

    def __call__(self, x: tf.Tensor) -> Any:
        return eager_forward(self.model(), x, self.output, self.training, self.logits)


def eager_forward_with_activation(
    model: keras.Model, x: tf.Tensor, layer: Any, call: int, output: Any, training: bool | None, logits: bool
) -> tuple[Any, tf.Tensor, str]:
    """(selected output, the layer's output at its call-th call, layer name) from one forward pass."""
    with PATCHING, ExitStack() as stack:
        if logits:
            stack.enter_context(strip_softmax(model))
        auto = stack.enter_context(capture_auto(model)) if layer == "auto" else None
        cap = None if auto is not None else stack.enter_context(capture(layer[1], layer[0]))
        outputs = select_output(model(x, training=training), output)
    activation, name = chosen(model, auto, cap, call)
    return outputs, activation, name


class _CaptureBody:
    def __init__(self, model: keras.Model, layer: Any, call: int, output: Any, training: bool | None, logits: bool) -> None:
        self.model = weakref.ref(model)
        self.args = (layer, call, output, training, logits)
        self.name = ""

    def __call__(self, x: tf.Tensor) -> Any:
        outputs, activation, self.name = eager_forward_with_activation(self.model(), x, *self.args)
        return outputs, activation


def _cached(model: keras.Model, key: tuple, x: tf.Tensor, make: Callable[[], Any], eager: Callable[[], Any]) -> Any:
    """``eager()`` at a key's first call (and for untraceable models), the traced ``make()`` from its second."""
    entries = _CACHE.setdefault(model, OrderedDict())
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


def forward(model: keras.Model, x: tf.Tensor, output: Any, training: bool | None, logits: bool) -> Any:
    """The selected output for ``x``: eagerly at a key's first call, traced from its second."""
    key = ("forward", output if not isinstance(output, list) else tuple(output), training, logits, tuple(x.shape),
           x.dtype.name)
    _, out = _cached(model, key, x, lambda: _compile(_Body(model, output, training, logits), x),
                     lambda: eager_forward(model, x, output, training, logits))
    return out


def forward_with_activation(
    model: keras.Model, x: tf.Tensor, layer: Any, call: int, output: Any, training: bool | None, logits: bool
) -> tuple[Any, tf.Tensor, str]:
    """:func:`eager_forward_with_activation`, traced from a key's second call."""
    path = layer if layer == "auto" else layer[0]
    key = ("capture", path, call, output if not isinstance(output, list) else tuple(output), training, logits,
           tuple(x.shape), x.dtype.name)
    entry, out = _cached(
        model, key, x, lambda: _compile(_CaptureBody(model, layer, call, output, training, logits), x),
        lambda: eager_forward_with_activation(model, x, layer, call, output, training, logits),
    )
    if entry is None:
        return out
    outputs, activation = out
    return outputs, activation, entry[1].name
