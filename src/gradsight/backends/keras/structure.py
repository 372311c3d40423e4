"""Whether a model's layers are still the ones a cache was filled with.

Traced functions bake the model's layers in: after ``Sequential.pop()`` / ``add()`` (or a
layer's ``activation`` replaced, the usual way to drop a softmax) a cached trace would
still run the old layers. Each cache keeps a :class:`Structure` and drops a model's
entries when :meth:`Structure.same` says the layers changed. Layers are held weakly
(a cache must not keep them alive); a layer's activation function is compared by
identity.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras

__all__ = ["Structure"]


class Structure:
    """The layers each model had when last seen (weakly), per model (weakly)."""

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[keras.Model, tuple[tuple[weakref.ref, Any], ...]] = (
            weakref.WeakKeyDictionary()
        )

    def same(self, model: keras.Model, layers: list[keras.layers.Layer]) -> bool:
        """False when ``layers`` (the model's layers, :func:`~.capture.named_layers` order) differ from the
        last call's, or an activation was replaced; then these are remembered. True at the first call."""
        seen = self._seen.get(model)
        if seen is not None and len(seen) == len(layers) and all(
            ref() is layer and act is getattr(layer, "activation", None) for (ref, act), layer in zip(seen, layers)
        ):
            return True
        self._seen[model] = tuple((weakref.ref(layer), getattr(layer, "activation", None)) for layer in layers)
        return seen is None
