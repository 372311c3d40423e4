"""Repeated Keras forward passes (Score-CAM's masked batches, gs.predict in a loop) run traced
from a shape's second call, with the eager call's numbers; untraceable models stay eager."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import gradsight as gs  # noqa: E402
from gradsight.backends.keras import compiled  # noqa: E402


class NumpyLayer(keras.layers.Layer):
    """Calls .numpy() on its input: cannot be traced."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.constant(np.maximum(x.numpy(), 0.0))

    def compute_output_shape(self, shape: tuple) -> tuple:
        return shape


def _model(numpy_layer: bool = False) -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    h = NumpyLayer()(h) if numpy_layer else keras.layers.ReLU()(h)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, out)


def test_second_call_is_traced_and_equal():
    model = _model()
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    eager = model(x, training=False).numpy()
    first, second, third = (gs.predict(model, x) for _ in range(3))
    entries = list(compiled._CACHE[model].values())
    assert len(entries) == 1 and isinstance(entries[0][0], tf.types.experimental.PolymorphicFunction)
    for out in (first, second, third):
        np.testing.assert_allclose(out, eager, rtol=1e-6, atol=1e-6)


def test_untraceable_model_stays_eager():
    model = _model(numpy_layer=True)
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
    eager = model(x, training=False).numpy()
    for _ in range(3):
        np.testing.assert_allclose(gs.predict(model, x), eager, rtol=1e-6, atol=1e-6)
    assert list(compiled._CACHE[model].values()) == ["eager"]


def test_eigencam_traced_capture_equals_eager():
    """Eigen-CAM's forward with a captured layer: the traced call returns the eager numbers and name."""
    model = _model()
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype(np.float32)
    runs = [gs.eigencam(model, x, layer="conv") for _ in range(3)]
    assert any(isinstance(e, tuple) for e in compiled._CACHE[model].values())
    for r in runs[1:]:
        assert r.layer == "conv"
        np.testing.assert_allclose(r.attributions, runs[0].attributions, rtol=1e-5, atol=1e-6)
