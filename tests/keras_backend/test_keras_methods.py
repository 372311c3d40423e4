"""Methods on Keras models against hand-written GradientTape references."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from keras_nets import SubclassedNet, batch, rectifier_net, vgg_style  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.backends.keras import trace  # noqa: E402
from gradsight.targets import TopK  # noqa: E402
from helpers import assert_rel  # noqa: E402


def tape_saliency(model: keras.Model, x: np.ndarray, classes: list[int]) -> np.ndarray:
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.gather(model(xt), classes, axis=1, batch_dims=1))
    return tape.gradient(score, xt).numpy()


def tape_gradcam(features, head, x: np.ndarray, classes: list[int]) -> np.ndarray:
    """The textbook Keras Grad-CAM: A = features(x), w = mean dy/dA, relu(sum w A)."""
    with tf.GradientTape() as tape:
        a = features(tf.constant(x))
        tape.watch(a)
        score = tf.reduce_sum(tf.gather(head(a), classes, axis=1, batch_dims=1))
    w = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(w * a, axis=-1)).numpy()


@pytest.fixture(scope="module")
def vgg() -> keras.Model:
    keras.utils.set_random_seed(4)
    return vgg_style(softmax=False)


def test_saliency_equals_tape(vgg: keras.Model) -> None:
    x = batch(3, 32)
    exp = gs.saliency(vgg, x, target=[0, 2, 3])
    assert_rel(exp.attributions, tape_saliency(vgg, x, [0, 2, 3]), 1e-6)
    np.testing.assert_array_equal(exp.targets, [0, 2, 3])


def test_top1_target(vgg: keras.Model) -> None:
    x = batch(3, 32)
    top = vgg(x).numpy().argmax(1)
    exp = gs.saliency(vgg, x)
    np.testing.assert_array_equal(exp.targets, top)
    assert_rel(exp.attributions, tape_saliency(vgg, x, list(top)), 1e-6)


def test_gradcam_equals_the_submodel_recipe(vgg: keras.Model) -> None:
    x = batch(2, 32)
    grad_model = keras.Model(vgg.input, [vgg.get_layer("block5_conv3").output, vgg.output])
    with tf.GradientTape() as tape:
        a, preds = grad_model(x)
        score = tf.reduce_sum(preds[:, 1])
    w = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
    ref = tf.nn.relu(tf.reduce_sum(w * a, axis=-1)).numpy()
    exp = gs.gradcam(vgg, x, target=1, layer="block5_conv3")
    assert exp.layer == "block5_conv3"
    assert_rel(exp.attributions, ref, 1e-5)
    assert exp.heatmaps.shape == (2, 32, 32)


def test_gradcam_in_a_nested_model_by_name_path_and_object() -> None:
    # The transfer-learning case: the layer lives inside the base model.
    keras.utils.set_random_seed(5)
    model = rectifier_net()
    base = model.get_layer("base")
    x = batch(2)
    with pytest.raises(ValueError):  # the usual sub-model recipe fails on nested models
        keras.Model(model.input, [base.get_layer("b_conv2").output, model.output])
    features = keras.Model(base.input, base.get_layer("b_conv2").output)  # inside the base: fine

    def head(a: tf.Tensor) -> tf.Tensor:  # the rest of the base, then the classifier, layer by layer
        h = base.get_layer("b_tfleaky")(base.get_layer("b_conv3")(base.get_layer("b_leaky")(a)))
        for name in ("conv4", "act", "conv5", "tfrelu", "gap", "fc1", "relu", "fc2"):
            h = model.get_layer(name)(h)
        return h

    ref = tape_gradcam(features, head, x, [1, 3])
    for layer in ("b_conv2", "base/b_conv2", base.get_layer("b_conv2")):
        exp = gs.gradcam(model, x, target=[1, 3], layer=layer)
        assert exp.layer == "base/b_conv2"
        assert_rel(exp.attributions, ref, 1e-5)


def test_subclassed_model() -> None:
    keras.utils.set_random_seed(6)
    model = SubclassedNet()
    x = batch(2)
    model(x)
    sal = gs.saliency(model, x, target=[2, 0])
    assert_rel(sal.attributions, tape_saliency(model, x, [2, 0]), 1e-6)
    cam = gs.gradcam(model, x, target=[2, 0], layer=model.conv2)
    ref = tape_gradcam(
        lambda xt: model.conv2(model.conv1(xt)),
        lambda a: model.fc(model.pool(tf.nn.relu(a))),
        x,
        [2, 0],
    )
    assert_rel(cam.attributions, ref, 1e-5)
    assert gs.gradcam(model, x, target=[2, 0]).layer == "conv2"  # auto: the last spatial layer output


def test_sequential_and_auto_layer() -> None:
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.Conv2D(4, 3, activation="relu", name="c2"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    x = batch(2)
    auto = gs.gradcam(model, x, target=0)
    assert auto.layer == "c2"
    assert_rel(auto.attributions, gs.gradcam(model, x, target=0, layer="c2").attributions, 1e-7)


def test_call_index_of_a_shared_layer() -> None:
    keras.utils.set_random_seed(8)
    inp = keras.Input((8, 8, 4))
    shared = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="shared")
    h1 = shared(inp)
    h2 = shared(h1)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h2))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)
    head_layers = model.layers[-2:]

    first = gs.gradcam(model, x, target=1, layer="shared", call=0)
    ref0 = tape_gradcam(shared, lambda a: head_layers[1](head_layers[0](shared(a))), x, [1, 1])
    assert_rel(first.attributions, ref0, 1e-5)
    last = gs.gradcam(model, x, target=1, layer="shared")  # call=-1
    ref1 = tape_gradcam(lambda t: shared(shared(t)), lambda a: head_layers[1](head_layers[0](a)), x, [1, 1])
    assert_rel(last.attributions, ref1, 1e-5)
    with pytest.raises(gs.LayerNotCalledError, match="called 2 time"):
        gs.gradcam(model, x, layer="shared", call=2)


def test_layer_errors_list_close_names() -> None:
    model = rectifier_net()
    x = batch(1)
    with pytest.raises(gs.LayerNotFoundError, match="b_conv2"):
        gs.gradcam(model, x, layer="b_conv_2")
    with pytest.raises(gs.LayerNotFoundError, match="not a layer of this model"):
        gs.gradcam(model, x, layer=keras.layers.Conv2D(2, 3))
    twice = keras.Input((8, 8, 3))
    a = keras.Model(twice, keras.layers.Conv2D(2, 3, name="c")(twice), name="a")
    b = keras.Model(twice, keras.layers.Conv2D(2, 3, name="c")(twice), name="b")
    both = keras.Model(twice, keras.layers.Concatenate()([a(twice), b(twice)]))
    with pytest.raises(gs.LayerNotFoundError, match="'a/c', 'b/c'"):
        gs.gradcam(both, x, target=0, layer="c", output=None)


def test_repeated_calls_do_not_retrace(vgg: keras.Model) -> None:
    x = batch(2, 32)
    gs.gradcam(vgg, x, target=[0, 1], layer="block5_conv3")
    gs.saliency(vgg, x, target=[0, 1])
    before = trace.traces(vgg)
    for classes in ([1, 2], [3, 3], 0):
        gs.gradcam(vgg, x, target=classes, layer="block5_conv3")
        gs.saliency(vgg, x, target=classes)
    assert trace.traces(vgg) == before
    with pytest.raises(gs.TargetError, match="out of range"):  # checked before the compiled call
        gs.saliency(vgg, x, target=[0, 9])


class _CountingIdentity(keras.layers.Layer):
    """Counts the forward passes that run its Python (eager calls, and tracing)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls = 0

    def call(self, x: tf.Tensor) -> tf.Tensor:
        self.calls += 1
        return x


@pytest.mark.parametrize("target", [[0, 2, 3], TopK(2)], ids=["classes", "top2"])
def test_guided_gradcam_is_one_forward_and_equals_its_two_parts(target: Any) -> None:
    """Guided Grad-CAM traces one forward pass (plain gradient to the layer, guided to the input)
    and gives gradcam() x guided_backprop() run separately."""
    keras.utils.set_random_seed(12)
    model = rectifier_net()  # every rectifier form, LeakyReLUs included
    counter = _CountingIdentity(name="count")
    model = keras.Model(model.input, counter(model.output))
    counter.calls = 0  # building the model called it symbolically
    x = batch(3)
    exp = gs.guided_gradcam(model, x, target=target, layer="conv5")
    assert counter.calls == 1
    cam = gs.gradcam(model, x, target=target, layer="conv5")
    gb = gs.guided_backprop(model, x, target=target).attributions
    assert_rel(exp.extras["cam"], cam.attributions, 1e-6)
    np.testing.assert_array_equal(exp.targets, cam.targets)
    c = cam.attributions
    up = gs.render.resize(c.reshape((-1,) + c.shape[-2:]), (8, 8)).reshape(c.shape[:-2] + (8, 8, 1))
    assert_rel(exp.attributions, gb * up, 1e-6)


def test_callable_target_and_output_selection() -> None:
    keras.utils.set_random_seed(9)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(3, 3, activation="relu")(inp)
    flat = keras.layers.Flatten()(h)
    model = keras.Model(inp, [keras.layers.Dense(2)(flat), keras.layers.Dense(5, name="aux")(flat)])
    x = batch(2)
    with pytest.raises(gs.TargetError, match="choose one with output"):
        gs.saliency(model, x)
    exp = gs.saliency(model, x, target=lambda out: out[:, 1] - out[:, 0], output=0)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = model(xt)[0]
        score = tf.reduce_sum(out[:, 1] - out[:, 0])
    assert_rel(exp.attributions, tape.gradient(score, xt).numpy(), 1e-6)
    assert exp.targets is None


def test_softmax_last_layer_warns_and_logits_explains_the_scores() -> None:
    keras.utils.set_random_seed(10)
    soft = vgg_style(softmax=True)
    x = batch(2, 32)
    with pytest.warns(gs.GradsightWarning, match="logits=True"):
        gs.saliency(soft, x, target=1)
    logits_model = keras.Model(soft.input, soft.get_layer("predictions").output)  # same layer, softmax kept
    pre = keras.Model(soft.input, soft.get_layer("gap").output)(x)
    dense = soft.get_layer("predictions")
    ref_logits = pre.numpy() @ dense.kernel.numpy() + dense.bias.numpy()
    exp = gs.saliency(soft, x, target=1, logits=True)
    np.testing.assert_allclose(exp.outputs, ref_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits_model(x).numpy().sum(1), 1.0, rtol=1e-5)  # the model is untouched

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.matmul(keras.Model(soft.input, soft.get_layer("gap").output)(xt), dense.kernel)[:, 1])
    assert_rel(exp.attributions, tape.gradient(score, xt).numpy(), 1e-5)


def test_logits_without_a_softmax_is_an_error(vgg: keras.Model) -> None:
    with pytest.raises(gs.ModelError, match="logits=True"):
        gs.saliency(vgg, batch(1, 32), logits=True)


def test_untraceable_model_runs_eagerly_with_one_warning() -> None:
    class NeedsEager(keras.layers.Layer):
        def call(self, x: tf.Tensor) -> tf.Tensor:
            scale = float(np.abs(x.numpy()).max() > -1)  # .numpy(): cannot be traced
            return tf.nn.relu(x) * scale

        def compute_output_shape(self, shape: tuple) -> tuple:
            return shape

    keras.utils.set_random_seed(11)
    inp = keras.Input((8, 8, 3))
    h = NeedsEager()(keras.layers.Conv2D(3, 3)(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    x = batch(2)
    with pytest.warns(gs.errors.EagerFallbackWarning, match="runs eagerly"):
        first = gs.guided_backprop(model, x, target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gs.errors.EagerFallbackWarning)  # once per model
        again = gs.guided_backprop(model, x, target=1)
        sal = gs.saliency(model, x, target=1)
    np.testing.assert_array_equal(first.attributions, again.attributions)
    assert_rel(sal.attributions, tape_saliency(model, x, [1, 1]), 1e-6)


def test_unbuilt_model_is_an_error() -> None:
    with pytest.raises(gs.ModelError, match="no weights yet"):
        gs.saliency(keras.Sequential([keras.layers.Dense(2)]), np.zeros((1, 3), np.float32))


def test_smoothgrad_noise_matches_a_numpy_reference(vgg: keras.Model) -> None:
    x = batch(2, 32)
    exp = gs.smoothgrad(vgg, x, target=[0, 1], samples=3, noise=0.1, seed=5)
    sigma = 0.1 * (x.reshape(2, -1).max(1) - x.reshape(2, -1).min(1))
    total = np.zeros_like(x)
    for s in range(3):
        eps = np.random.default_rng([5, s]).standard_normal((2, 3, 32, 32), dtype=np.float32).transpose(0, 2, 3, 1)
        total += tape_saliency(vgg, x + eps * sigma[:, None, None, None], [0, 1])
    assert_rel(exp.attributions, total / 3, 1e-5)


def test_layers_lists_every_call_in_order() -> None:
    from gradsight.backends.keras import KerasBackend

    model = rectifier_net()
    rows = KerasBackend().layers(model, tf.constant(batch(1)))
    names = [r[0] for r in rows]
    assert names.index("base/b_conv1") < names.index("base") < names.index("conv4") < names.index("fc2")
    assert dict((r[0], r[2]) for r in rows)["base/b_conv3"] == (1, 8, 8, 6)


def test_call_index_out_of_range_with_auto_layer() -> None:
    with pytest.raises(gs.LayerNotCalledError, match=r"called 1 time\(s\).*call=5"):
        gs.gradcam(rectifier_net(), batch(1), target=0, call=5)
