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
from typing import Any

import keras
import tensorflow as tf

from .trace import forward as eager_forward

__all__ = ["forward"]

MAX_ENTRIES = 8
_CACHE: weakref.WeakKeyDictionary[keras.Model, OrderedDict] = weakref.WeakKeyDictionary()


class _Body:
    """What ``tf.function`` traces (holds the model weakly: the cache is keyed by it)."""

    def __init__(self, model: keras.Model, output: Any, training: bool | None, logits: bool) -> None:
        self.model = weakref.ref(model)
        self.output, self.training, self.logits = output, training, logits

    def __call__(self, x: tf.Tensor) -> Any:
        return eager_forward(self.model(), x, self.output, self.training, self.logits)


def forward(model: keras.Model, x: tf.Tensor, output: Any, training: bool | None, logits: bool) -> Any:
    """The selected output for ``x``: eagerly at a key's first call, traced from its second."""
    key = (output if not isinstance(output, list) else tuple(output), training, logits, tuple(x.shape), x.dtype.name)
    entries = _CACHE.setdefault(model, OrderedDict())
    entry = entries.get(key)
    if entry is None or entry == "eager":
        if entry is None:
            entries[key] = "seen"
            while len(entries) > MAX_ENTRIES:
                entries.popitem(last=False)
        return eager_forward(model, x, output, training, logits)
    if entry == "seen":
        spec = [tf.TensorSpec(x.shape, x.dtype)]
        entry = entries[key] = tf.function(_Body(model, output, training, logits), input_signature=spec,
                                           autograph=False)
    entries.move_to_end(key)
    try:
        return entry(x)
    except Exception:  # noqa: BLE001 - not traceable (e.g. .numpy() in call): eager from now on
        entries[key] = "eager"
        return eager_forward(model, x, output, training, logits)
