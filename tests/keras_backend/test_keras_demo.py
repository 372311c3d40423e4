"""The Keras twin of the demo CNN: architecture, converted weights file, loading without torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from gradsight.demo import keras_model  # noqa: E402
from gradsight.demo.shapes import generate, preprocess  # noqa: E402


def test_shipped_npz_matches_the_torch_weights() -> None:
    torch = pytest.importorskip("torch")
    with np.load(keras_model.NPZ_PATH) as z:
        assert str(z["source_sha256"]) == keras_model._sha256(keras_model.PT_PATH), (
            "weights/shapes_net_keras.npz is stale: run python -c 'from gradsight.demo.keras_model import "
            "save_converted_weights; save_converted_weights()'"
        )
        shipped = {k: z[k] for k in z.files if k != "source_sha256"}
    state = torch.load(keras_model.PT_PATH, weights_only=True, map_location="cpu")
    fresh = keras_model.convert_state_dict({k: v.numpy() for k, v in state.items()})
    assert shipped.keys() == fresh.keys()
    for k in fresh:
        np.testing.assert_array_equal(shipped[k], fresh[k])


def test_loads_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    model = keras_model.load_keras_demo_model()
    x = preprocess(generate(2, seed=3).images, layout="NHWC")
    assert model(x).shape == (2, 5)
    names = [layer.name for layer in model.layers]
    for name in ("conv1", "bn1", "relu", "pool1", "conv4", "bn4", "relu4", "gap", "classifier"):
        assert name in names
    assert model.get_layer("bn1").epsilon == 1e-5
