"""What a Keras call keeps between calls never answers for an edited model, and the CAM weighing
runs inside the compiled gradient pass (issue 15's per-call overhead)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import gradsight as gs  # noqa: E402
from gradsight.backends import backend_for  # noqa: E402
from gradsight.methods._cam import LayerWeigh, layer_cam  # noqa: E402
from gradsight.methods.gradcam import weighing  # noqa: E402
from gradsight.targets import as_target  # noqa: E402

X = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)


def _net(name: str = "net", softmax: bool = False) -> keras.Model:
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same", name="c1"), keras.layers.ReLU(name="act"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax" if softmax else None,
                                                                  name="head"),
    ], name=name)


def tape_gradcam(model: keras.Model, classes: list[int]) -> np.ndarray:
    """Grad-CAM at "act" by hand, from the model's layers as they are now."""
    layers = model.layers
    with tf.GradientTape() as tape:
        a = layers[1](layers[0](tf.constant(X)))
        tape.watch(a)
        out = a
        for lay in layers[2:]:
            out = lay(out)
        score = tf.reduce_sum(tf.gather(out, classes, axis=1, batch_dims=1))
    w = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(w * a, axis=-1)).numpy()


def tape_saliency(model: keras.Model, classes: list[int]) -> np.ndarray:
    xt = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.gather(model(xt), classes, axis=1, batch_dims=1))
    return tape.gradient(score, xt).numpy()


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(b).max())))


def test_an_edited_model_is_never_answered_from_an_old_call() -> None:
    """Layers popped and added, new weights on the new layer, an activation replaced, a model rebuilt
    under the same name: each call explains the model as it is (the traced functions are dropped)."""
    keras.utils.set_random_seed(0)
    model, t = _net(), [0, 2]
    for _ in range(2):  # the second call runs the trace
        _close(gs.gradcam(model, X, target=t, layer="act").attributions, tape_gradcam(model, t))
        _close(gs.saliency(model, X, target=t).attributions, tape_saliency(model, t))
    model.pop()
    model.add(keras.layers.Dense(3, name="head"))
    model(X)
    _close(gs.gradcam(model, X, target=t, layer="act").attributions, tape_gradcam(model, t))
    _close(gs.saliency(model, X, target=t).attributions, tape_saliency(model, t))
    model.layers[-1].set_weights([2 * w + 1 for w in model.layers[-1].get_weights()])
    _close(gs.gradcam(model, X, target=t, layer="act").attributions, tape_gradcam(model, t))
    model.layers[-1].activation = keras.activations.sigmoid  # replaced after the traces were made
    _close(gs.gradcam(model, X, target=t, layer="act").attributions, tape_gradcam(model, t))
    _close(gs.saliency(model, X, target=t).attributions, tape_saliency(model, t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # compiled forward passes (SmoothGrad's clean pass): traced at the second call
            gs.predict(model, X)
        model.layers[-1].activation = keras.activations.linear
        np.testing.assert_allclose(gs.predict(model, X), model(X).numpy(), rtol=1e-5, atol=1e-6)
    rebuilt = _net(model.name)  # same name, new weights
    _close(gs.gradcam(rebuilt, X, target=t, layer="act").attributions, tape_gradcam(rebuilt, t))


def test_a_layer_name_is_looked_up_in_each_call() -> None:
    """The session's memo lives for one call: a name that now means another layer is found again."""
    keras.utils.set_random_seed(1)
    model, t = _net(), [1, 0]
    gs.gradcam(model, X, target=t, layer="act")
    model.pop()
    model.pop()
    model.pop()  # act, pool, head gone: "act" now names nothing
    model.add(keras.layers.Conv2D(4, 3, padding="same", name="act"))
    model.add(keras.layers.GlobalAveragePooling2D())
    model.add(keras.layers.Dense(3))
    model(X)
    _close(gs.gradcam(model, X, target=t, layer="act").attributions, tape_gradcam(model, t))


@pytest.mark.parametrize("target", [[0, 2], gs.targets.TopK(2)])
def test_the_cam_weighing_runs_in_the_gradient_pass(target) -> None:
    """gs.gradcam's map is the one the (compiled) gradient pass made, and equals the textbook one."""
    keras.utils.set_random_seed(2)
    model = _net()
    bk = backend_for(model)
    for _ in range(2):
        with bk.session(model) as run:
            x = run.prepare_input(model, X)
            ref = run.resolve_layer(model, "act")
            g = run.gradients(model, x, as_target(target), layer=ref, wrt_input=False,
                              layer_map=weighing(run, None))
            cam, multi, made = layer_cam(run, model, x, g, weighing(run, None))
    assert g.layer_map is not None and cam is g.layer_map["map"] and set(made) == {"zero"}
    assert multi == (not isinstance(target, list))
    zero = run.ops.numpy(made["zero"])
    assert zero.shape == tuple(cam.shape[:-2]) and not zero.any()
    if isinstance(target, list):
        _close(run.ops.numpy(cam), tape_gradcam(model, target))
    else:
        classes = gs.gradcam(model, X, target=target, layer="act").targets
        for j in range(2):
            _close(run.ops.numpy(cam)[:, j], tape_gradcam(model, classes[:, j].tolist()))
    _close(gs.gradcam(model, X, target=[0, 2], layer="act").attributions, tape_gradcam(model, [0, 2]))


def test_layer_weigh_is_a_cache_key() -> None:
    """Compiled functions are kept per request: equal plans are equal and hash alike."""
    from gradsight.methods.gradcam_plus_plus import weigh

    a, b = LayerWeigh(weigh, (), -1), LayerWeigh(weigh, (), -1)
    assert a == b and hash(a) == hash(b)
    assert a != LayerWeigh(weigh, (), 1)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam"])
def test_zero_gradient_flags_from_the_pass(method, monkeypatch) -> None:
    """As the PyTorch test (test_methods_cam_family.py): the zero-gradient warning from the compiled
    pass's flags, the layer gradient never read on the host, exactly the dead sample (pairs with k targets)."""
    from gradsight.backends.keras.ops import KerasOps

    def not_on_the_host(*args, **kwargs):
        raise AssertionError("a single-layer gradient CAM read the layer gradient on the host")

    keras.utils.set_random_seed(0)
    dead = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c1"),
        keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    dead.get_layer("c1").kernel.assign(np.abs(dead.get_layer("c1").kernel.numpy()))
    x = np.concatenate([-np.ones((1, 8, 8, 3)), np.ones((1, 8, 8, 3))]).astype(np.float32)
    monkeypatch.setattr(KerasOps, "view", not_on_the_host)
    with pytest.warns(gs.ZeroGradientWarning, match=r"sample\(s\) \[0\]\."):
        gs.explain(dead, x, method=method, target=[0, 0], layer="c1")
    with pytest.warns(gs.ZeroGradientWarning, match=r"\(sample, target\) \[\(0, 0\), \(0, 1\)\]\."):
        gs.explain(dead, x, method=method, target=gs.targets.TopK(2), layer="c1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", gs.ZeroGradientWarning)
        gs.explain(dead, x[1:], method=method, target=gs.targets.TopK(2), layer="c1")  # the live sample alone


def test_named_layers_is_the_walk_in_its_order() -> None:
    """named_layers (the list every compiled call checks, and what iter_layers iterates) walks depth first,
    path for path and object for object, against listings written out here: a nested functional model with
    a Sequential inside, a custom layer holding sub-layers, a layer shared by two nested models (listed once,
    at its first path); a flat functional model (Keras' own layer list); a subclassed model."""
    from keras_nets import SubclassedNet, vgg_style

    from gradsight.backends.keras.capture import iter_layers, named_layers

    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.conv, self.act = keras.layers.Conv2D(4, 3, padding="same", name="conv"), keras.layers.ReLU(name="act")

        def call(self, x):
            return self.act(self.conv(x))

    shared = keras.layers.Dense(4, name="shared")
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="d"), shared], name="inner")
    inp = keras.Input((8, 8, 3))
    block = Block(name="block")
    h = keras.layers.GlobalAveragePooling2D(name="gap")(block(inp))
    to4 = keras.layers.Dense(4, name="to4")
    outer = keras.Model(inp, shared(inner(to4(h))), name="outer")
    expected = [("block", block), ("block/conv", block.conv), ("block/act", block.act), ("gap", outer.get_layer("gap")),
                ("to4", to4), ("inner", inner), ("inner/d", inner.get_layer("d")), ("inner/shared", shared)]
    flat = vgg_style()
    sub = SubclassedNet()
    sub(np.zeros((1, 8, 8, 3), np.float32))
    cases = [
        (outer, expected),
        (flat, [(lay.name, lay) for lay in flat.layers if not isinstance(lay, keras.layers.InputLayer)]),
        (sub, [(n, getattr(sub, n)) for n in ("conv1", "conv2", "pool", "fc")]),
    ]
    for model, want in cases:
        listed = named_layers(model)
        assert [p for p, _ in listed] == [p for p, _ in want] and len(listed) > 3
        assert all(a is b for (_, a), (_, b) in zip(listed, want))
        assert list(iter_layers(model)) == listed
