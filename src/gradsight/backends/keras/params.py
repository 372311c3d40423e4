"""Parameter layers and their randomisation (for the sanity check), restored exactly afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import keras
import numpy as np

from ...errors import LayerNotFoundError, close_matches
from .._random import random_like
from .capture import named_layers

__all__ = ["parameter_layers", "randomized"]


def parameter_layers(model: keras.Model) -> list[str]:
    """Paths of the layers with trainable weights (nested models' own layers, not the containers), in order."""
    return [p for p, layer in named_layers(model) if layer.trainable_weights and not isinstance(layer, keras.Model)]


def _draw(w: np.ndarray, seed: int, name: str, index: int) -> np.ndarray:
    # Draw in PyTorch's channels-first layout so both backends get the same weights.
    if w.ndim == 4:  # conv kernel (kh, kw, in, out) <- (out, in, kh, kw)
        return random_like(w.transpose(3, 2, 0, 1), seed, name, index).transpose(2, 3, 1, 0)
    if w.ndim == 2:  # dense kernel (in, out) <- (out, in)
        return random_like(w.T, seed, name, index).T
    return random_like(w, seed, name, index)


@contextmanager
def randomized(model: keras.Model, layers: Sequence[str], seed: int = 0) -> Iterator[keras.Model]:
    """The model with the trainable weights of ``layers`` re-drawn, in place; restored exactly on exit.

    Non-trainable weights (BatchNorm moving statistics) are never touched.
    """
    by_path = dict(named_layers(model))
    for name in layers:
        if name not in by_path:
            raise LayerNotFoundError(
                f"no layer named {name!r} to randomise.{close_matches(name, parameter_layers(model))}"
            )
    saved: list[tuple[keras.Variable, np.ndarray]] = []
    try:
        for name in layers:
            for i, v in enumerate(by_path[name].trainable_weights):
                value = np.asarray(v.numpy())
                saved.append((v, value))
                v.assign(_draw(value, seed, name, i))
        yield model
    finally:
        for v, value in reversed(saved):
            v.assign(value)
