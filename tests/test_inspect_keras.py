"""gradsight.inspect on Keras models, checked against the PyTorch twins on the same weights
and against numbers read straight from the Keras layers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from gradsight.demo.keras_model import load_keras_demo_model  # noqa: E402
from gradsight.demo.mlp import load_keras_mlp_model, load_mlp_model, make_moons  # noqa: E402
from gradsight.demo.model import load_demo_model  # noqa: E402
from gradsight.demo.shapes import generate, preprocess  # noqa: E402
from gradsight.errors import InputError, LayerNotFoundError, ModelError  # noqa: E402
from gradsight.inspect import activations, filters, hidden_units, unit_lines, weight_stats  # noqa: E402
from helpers import assert_rel  # noqa: E402


@pytest.fixture(scope="module")
def twins():
    return load_demo_model(), load_keras_demo_model()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return generate(24, seed=1).images


def test_twins_give_the_same_penultimate_features(twins, images) -> None:
    tm, km = twins
    at = activations(tm, preprocess(images), predict=True, progress=False)
    ak = activations(km, preprocess(images, layout="NHWC"), predict=True, batch_size=10, progress=False)
    assert ak.layer == "input of classifier" == at.layer
    assert ak.values.shape == (24, 64)
    assert np.abs(ak.values - at.values).max() <= 1e-4
    np.testing.assert_array_equal(ak.predictions, at.predictions)
    kernel, bias = (w.numpy() for w in (km.get_layer("classifier").kernel, km.get_layer("classifier").bias))
    logits = np.asarray(km(preprocess(images, layout="NHWC"), training=False))
    assert_rel(ak.values @ kernel + bias, logits, 1e-5)


def test_twins_give_the_same_named_layer_activations(twins, images) -> None:
    tm, km = twins
    for reduce in ("gap", "flatten"):  # flatten is channels-first in both frameworks
        at = activations(tm, preprocess(images), layer="relu4", reduce=reduce, progress=False)
        ak = activations(km, preprocess(images, layout="NHWC"), layer="relu4", reduce=reduce, progress=False)
        assert at.values.shape == ak.values.shape
        assert np.abs(ak.values - at.values).max() <= 1e-4
    auto = activations(km, preprocess(images, layout="NHWC"), layer="auto", batch_size=10, progress=False)
    assert auto.layer == "relu4"


def test_subclassed_keras_model_default_layer() -> None:
    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.proj = keras.layers.Dense(5, name="proj")
            self.head = keras.layers.Dense(3, name="head")

        def call(self, x):
            return self.head(keras.ops.tanh(self.proj(x)) * 2.0 - 1.0)

    net = Net()
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    net(x)
    acts = activations(net, x, batch_size=4, progress=False)
    ref = np.tanh(x @ net.proj.kernel.numpy() + net.proj.bias.numpy()) * 2 - 1
    assert acts.layer == "input of head"
    assert_rel(acts.values, ref, 1e-5)
    assert "call" not in net.head.__dict__  # the input capture left no trace


def test_keras_errors(twins, images) -> None:
    _, km = twins
    with pytest.raises(InputError, match="channels-first"):
        activations(km, preprocess(images[:4]), progress=False)
    with pytest.raises(ModelError, match="not a 2-D convolution"):
        filters(km, "bn2")
    with pytest.raises(LayerNotFoundError, match="conv2"):
        filters(km, "conv22")
    with pytest.raises(ModelError, match="not a dense"):
        hidden_units(km)
    wide = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="R\\^3"):
        hidden_units(wide)


def test_filters_are_the_same_picture_in_both_frameworks(twins) -> None:
    tm, km = twins
    for layer in (None, "conv2"):
        pt, pk = np.asarray(filters(tm, layer)), np.asarray(filters(km, layer))
        assert pt.shape == pk.shape and pt.std() > 10
        assert np.abs(pt.astype(int) - pk).max() <= 1  # kernels equal to float32 rounding


def test_weight_stats_against_the_keras_variables(twins) -> None:
    tm, km = twins
    rows = weight_stats(km)
    variables = [(layer.name, v) for layer in km.layers for v in layer.weights]
    assert [(r.layer, r.name) for r in rows] == [(n, v.name) for n, v in variables]
    for r, (_, v) in zip(rows, variables):
        a = np.asarray(v.numpy(), np.float64)
        assert r.shape == a.shape and r.trainable == v.trainable
        np.testing.assert_allclose([r.mean, r.std, r.norm], [a.mean(), a.std(), np.linalg.norm(a.ravel())],
                                   rtol=1e-6, atol=1e-9)
    # same tensors as the PyTorch twin, in the same order (layouts differ, statistics do not)
    torch_rows = weight_stats(tm)
    assert len(torch_rows) == len(rows)
    for r, t in zip(rows, torch_rows):
        assert r.layer == t.layer and np.prod(r.shape) == np.prod(t.shape)
        np.testing.assert_allclose([r.mean, r.std, r.norm], [t.mean, t.std, t.norm], rtol=1e-5, atol=1e-7)


def test_hidden_units_of_the_keras_twin_mlp() -> None:
    km, tm = load_keras_mlp_model(), load_mlp_model()
    x, y = make_moons(100, seed=1)
    np.testing.assert_allclose(np.asarray(km(x)), tm(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    box = (-2.0, 2.5, -1.5, 1.5)
    kernel, bias = km.get_layer("fc1").kernel.numpy().astype(np.float64), km.get_layer("fc1").bias.numpy()
    for line, tline in zip(unit_lines(km, box), unit_lines(tm, box)):
        w = kernel[:, line.unit]
        np.testing.assert_allclose(line.weight, w, rtol=1e-6)
        if line.segment is not None:
            for p in line.segment:
                assert abs(w @ p + bias[line.unit]) < 1e-6
            np.testing.assert_allclose(line.segment, tline.segment, atol=1e-6)
    pk, pt = np.asarray(hidden_units(km, x, y)), np.asarray(hidden_units(tm, x, y))
    assert pk.shape == pt.shape and pk.std() > 10
    assert (pk != pt).any(-1).mean() < 0.002  # region borders may differ by float rounding
