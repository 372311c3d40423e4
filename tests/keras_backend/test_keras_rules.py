"""Backward rules on Keras models: every way a rectifier is written, against references."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from keras_nets import ActsRelu, OpsRelu, TfRelu, batch, copy_weights, rectifier_net  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.backends.keras import ACTIVATION_OPS  # noqa: E402
from helpers import assert_rel  # noqa: E402

# Worked example (a 3x3 feature map and an upstream gradient; the three rules' outputs).
A = np.array([[1, -1, 5], [2, -5, -7], [-3, 2, 4]], np.float32)
G = np.array([[-2, 3, -1], [6, -3, 1], [2, -1, 3]], np.float32)
EXPECTED = {
    "plain": [[-2, 0, -1], [6, 0, 0], [0, -1, 3]],
    "deconvnet": [[0, 3, 0], [6, 0, 1], [2, 0, 3]],
    "guided": [[0, 0, 0], [6, 0, 0], [0, 0, 3]],
}

FORMS = {
    "Activation('relu')": lambda: keras.layers.Activation("relu"),
    "ReLU()": lambda: keras.layers.ReLU(),
    "Conv2D(activation='relu')": lambda: keras.layers.Conv2D(1, 1, activation="relu", use_bias=False, kernel_initializer="ones"),
    "tf.nn.relu": TfRelu,
    "keras.ops.relu": OpsRelu,
    "keras.activations.relu": ActsRelu,
}


def _vjp(model: keras.Model, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = model(xt)
    return tape.gradient(y, xt, output_gradients=tf.constant(g)).numpy()


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("rule", list(EXPECTED))
def test_worked_example_through_every_rectifier_form(form: str, rule: str) -> None:
    inp = keras.Input((3, 3, 1))
    model = keras.Model(inp, FORMS[form]()(inp))
    with gs.backward_rule(model, rule) as report:
        got = _vjp(model, A[None, :, :, None], G[None, :, :, None])[0, :, :, 0]
    np.testing.assert_array_equal(got, np.array(EXPECTED[rule], np.float32))
    assert report.count == 1


@pytest.mark.parametrize("method,rule", [("guided_backprop", "guided"), ("deconvnet", "deconvnet")])
def test_rules_equal_a_custom_gradient_twin(method: str, rule: str) -> None:
    # Nested base model; activation= argument, LeakyReLU, tf.nn.leaky_relu, Activation,
    # tf.nn.relu and ReLU layers against RefAct, written independently in three lines.
    keras.utils.set_random_seed(1)
    model, twin = rectifier_net(), rectifier_net(twin=rule)
    copy_weights(model, twin)
    x = batch(3)
    exp = gs.explain(model, x, method=method, target=[0, 1, 3])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.gather(twin(xt), [0, 1, 3], axis=1, batch_dims=1))
    assert_rel(exp.attributions, tape.gradient(score, xt).numpy(), 1e-5)
    np.testing.assert_allclose(exp.outputs, twin(x).numpy(), rtol=1e-5, atol=1e-6)


def test_every_rectifier_is_counted() -> None:
    model = rectifier_net()
    with gs.backward_rule(model, "guided") as report:
        model(batch(1))
    assert report.overridden == {"relu": 4, "leaky_relu": 2}


def test_generalised_relu_keeps_its_parameters() -> None:
    inp = keras.Input((5,))
    model = keras.Model(inp, keras.layers.ReLU(max_value=3.0, negative_slope=0.1, threshold=0.5)(inp))
    x = np.array([[-2.0, 0.2, 1.0, 2.9, 4.0]], np.float32)
    g = np.array([[1.0, -1.0, 2.0, -2.0, 1.0]], np.float32)
    d = np.array([0.1, 0.1, 1.0, 1.0, 0.0], np.float32)  # slope below 0.5, 1 inside, 0 above 3
    plain = _vjp(model, x, g)
    with gs.backward_rule(model, "plain"):
        np.testing.assert_allclose(_vjp(model, x, g), plain)  # TF's own gradient
    np.testing.assert_allclose(plain[0], g[0] * d, rtol=1e-6)
    with gs.backward_rule(model, "guided"):
        np.testing.assert_allclose(_vjp(model, x, g)[0], np.maximum(g[0], 0) * d, rtol=1e-6)
    f = np.where(g[0] > 0.5, np.minimum(g[0], 3.0), 0.0) + 0.1 * np.minimum(g[0] - 0.5, 0.0)
    with gs.backward_rule(model, "deconvnet"):
        np.testing.assert_allclose(_vjp(model, x, g)[0], f, rtol=1e-6)


def test_guided_gradient_of_relu_then_minus_square_is_zero() -> None:
    # d(-h^2)/dh = -2h <= 0 wherever h = relu(x) > 0: guided backprop passes nothing.
    inp = keras.Input((4, 4, 3))
    h = keras.layers.ReLU()(inp)
    out = keras.layers.Lambda(lambda t: -tf.reduce_sum(t * t, axis=[1, 2, 3])[:, None])(h)
    model = keras.Model(inp, out)
    x = batch(2, 4)
    with pytest.warns(gs.ZeroGradientWarning):  # one score per sample: target=None explains it
        guided = gs.guided_backprop(model, x)
    assert np.all(guided.attributions == 0)
    plain = gs.saliency(model, x).attributions
    np.testing.assert_allclose(plain, -2 * np.maximum(x, 0), rtol=1e-6)


def test_backward_rule_around_user_tape_equals_the_method() -> None:
    keras.utils.set_random_seed(2)
    model = rectifier_net()
    x = batch(2)
    with gs.backward_rule(model, "guided"):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            score = tf.reduce_sum(model(xt)[:, 2])
        mine = tape.gradient(score, xt).numpy()
    assert_rel(gs.guided_backprop(model, x, target=2).attributions, mine, 1e-6)
    # After the block the model back-propagates plainly again.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(model(xt)[:, 2])
    assert_rel(tape.gradient(score, xt).numpy(), gs.saliency(model, x, target=2).attributions, 1e-6)


def test_rule_applies_only_inside_the_model() -> None:
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t - 10.0)(keras.layers.ReLU()(inp)))
    x = tf.constant([[1.0, -1.0, 2.0]])
    with gs.backward_rule(model, "deconvnet") as report:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.relu(model(x))  # the user's own relu, outside the model: plain, and y < 0
        g = tape.gradient(y, x, output_gradients=tf.constant([[-1.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(g.numpy(), [[0.0, 0.0, 0.0]])  # deconvnet there would pass relu(g)
    assert report.count == 1


def test_nothing_overridden_is_an_error() -> None:
    inp = keras.Input((4, 4, 3))
    h = keras.layers.Conv2D(2, 3, activation="tanh")(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    with pytest.raises(gs.RuleNotAppliedError, match="overrode no activation"):
        gs.guided_backprop(model, batch(1, 4))
    with pytest.raises(gs.RuleNotAppliedError):
        with gs.backward_rule(model, "deconvnet"):
            model(batch(1, 4))


def test_other_activations_are_named() -> None:
    inp = keras.Input((4, 4, 3))
    h = keras.layers.Conv2D(2, 3, activation="gelu")(inp)
    h = keras.layers.Conv2D(2, 1, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    with pytest.warns(gs.UnsupportedActivationWarning, match="gelu x1"):
        gs.guided_backprop(model, batch(1, 4))


@pytest.mark.parametrize("policy", ["float16", "mixed_float16"])
def test_half_precision(policy: str) -> None:
    keras.utils.set_random_seed(3)

    def net(dtype: str) -> keras.Model:
        inp = keras.Input((8, 8, 3))
        h = keras.layers.Conv2D(4, 3, activation="relu", dtype=dtype, name="c1")(inp)
        h = keras.layers.LeakyReLU(0.1, dtype=dtype)(keras.layers.Conv2D(4, 3, dtype=dtype, name="c2")(h))
        h = keras.layers.GlobalAveragePooling2D(dtype=dtype)(h)
        return keras.Model(inp, keras.layers.Dense(3, dtype=dtype, name="fc")(h))

    full, half = net("float32"), net(policy)
    copy_weights(full, half)
    x = batch(2)
    for method in ("guided_backprop", "deconvnet", "gradcam"):
        a = gs.explain(half, x, method=method, target=1).attributions
        assert a.dtype == np.float32
        assert_rel(a, gs.explain(full, x, method=method, target=1).attributions, 2e-2)


def test_function_references_are_restored() -> None:
    before = {name: _lookup(name) for name in ACTIVATION_OPS}
    model = rectifier_net()
    with pytest.raises(RuntimeError):
        with gs.backward_rule(model, "guided"):
            assert tf.nn.relu is not before["tensorflow._api.v2.nn.relu"]
            raise RuntimeError("user code fails inside the block")
    gs.guided_backprop(model, batch(1))
    assert {name: _lookup(name) for name in ACTIVATION_OPS} == before


def _lookup(dotted: str) -> object:
    import importlib

    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def test_method_rule_inside_a_user_rule_block_and_the_compiled_cache() -> None:
    """Inside a rule block the innermost rule wins; saliency there takes the block's rule,
    and neither a trace made before the block nor one made inside it leaks across it."""
    keras.utils.set_random_seed(4)
    model = rectifier_net()
    x = batch(2)
    plain = gs.saliency(model, x, target=1).attributions  # traced and cached before the block
    guided = gs.guided_backprop(model, x, target=1).attributions
    deconv = gs.deconvnet(model, x, target=1).attributions
    with gs.backward_rule(model, "deconvnet"):
        inner = gs.guided_backprop(model, x, target=1).attributions
        outer = gs.saliency(model, x, target=1).attributions
    after = gs.saliency(model, x, target=1).attributions
    assert_rel(inner, guided, 1e-6)
    assert_rel(outer, deconv, 1e-6)
    assert_rel(after, plain, 1e-6)
    assert not np.allclose(plain, deconv)
