"""Keras: a small ViT (token layers, the automatic layer = the input of the last attention),
one-score models and layer_input, each against a hand-written GradientTape reference."""

from __future__ import annotations

import numpy as np
import pytest

import gradsight as gs
from gradsight.errors import ZeroGradientWarning

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


class ClassToken(keras.layers.Layer):
    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="random_normal", name="token")

    def call(self, x):
        return tf.concat([tf.tile(self.token, [tf.shape(x)[0], 1, 1]), x], axis=1)


class First(keras.layers.Layer):
    def call(self, x):
        return x[:, 0]


def keras_vit(dim: int = 16) -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(dim, 4, strides=4, name="patch")(inp)
    h = ClassToken(name="cls")(keras.layers.Reshape((16, dim))(h))
    for b in range(2):
        n = keras.layers.LayerNormalization(name=f"ln{b}")(h)
        h = h + keras.layers.MultiHeadAttention(2, dim // 2, name=f"attn{b}")(n, n)
        m = keras.layers.LayerNormalization(name=f"mlp_ln{b}")(h)
        h = h + keras.layers.Dense(dim, name=f"mlp{b}")(keras.layers.Dense(2 * dim, activation="gelu")(m))
    h = keras.layers.LayerNormalization(name="final_norm")(h)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(First()(h)))


X = np.random.default_rng(0).standard_normal((3, 16, 16, 3)).astype(np.float32)


def reference_cam(model: keras.Model, layer: str, cls: np.ndarray, prefix: int = 1) -> np.ndarray:
    probe = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        a, out = probe(X, training=False)
        score = tf.reduce_sum(tf.gather(out, cls, batch_dims=1))
    g = tape.gradient(score, a).numpy()
    a = a.numpy()
    n, t, c = a.shape
    side = int(round((t - prefix) ** 0.5))
    a, g = a[:, prefix:].reshape(n, side, side, c), g[:, prefix:].reshape(n, side, side, c)
    return np.maximum((g.mean((1, 2), keepdims=True) * a).sum(-1), 0)


def test_keras_vit_auto_layer_is_the_last_attention_input():
    model = keras_vit()
    exp = gs.gradcam(model, X)
    assert exp.layer == "attn1" and exp.attributions.shape == (3, 4, 4)
    ref = reference_cam(model, "ln1", exp.targets)  # ln1 feeds attn1: the same tensor
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)
    named = gs.gradcam(model, X, target=2, layer="mlp_ln0", tokens=gs.Tokens(prefix=1, grid=(4, 4)))
    np.testing.assert_allclose(named.attributions, reference_cam(model, "mlp_ln0", np.full(3, 2)), rtol=1e-4,
                               atol=1e-6)


def test_keras_vit_final_norm_warns():
    with pytest.warns(ZeroGradientWarning, match="zero at every patch token"):
        gs.gradcam(keras_vit(), X, layer="final_norm")


def test_keras_one_score_and_layer_input():
    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    conv2 = keras.layers.Conv2D(5, 3, activation="relu", name="conv2")(conv)
    model = keras.Model(inp, keras.layers.Dense(1, name="logit")(keras.layers.GlobalAveragePooling2D()(conv2)))
    xt = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        s = tf.reduce_sum(model(xt, training=False))
    logit_grad = tape.gradient(s, xt).numpy()
    np.testing.assert_allclose(gs.saliency(model, X).attributions, logit_grad, rtol=1e-4, atol=1e-7)
    neg = gs.saliency(model, X, target=[0, 1, 1])
    np.testing.assert_allclose(neg.attributions, logit_grad * np.array([-1, 1, 1])[:, None, None, None],
                               rtol=1e-4, atol=1e-7)
    # layer_input: the input of conv2 is conv's output
    probe = keras.Model(inp, [conv, model.output])
    with tf.GradientTape() as tape:
        a, out = probe(X, training=False)
        score = tf.reduce_sum(out)
    g = tape.gradient(score, a).numpy()
    ref = np.maximum((g.mean((1, 2), keepdims=True) * a.numpy()).sum(-1), 0)
    exp = gs.gradcam(model, X, layer="conv2", layer_input=True)
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)


def test_keras_attention_rollout_matches_reference():
    model = keras_vit()
    probe = keras.Model(model.input, [model.get_layer(f"ln{b}").output for b in range(2)])
    lns = probe(X, training=False)
    rollout = np.eye(17)[None].repeat(3, 0)
    for b, ln in enumerate(lns):
        _, scores = model.get_layer(f"attn{b}")(ln, ln, return_attention_scores=True, training=False)
        a = (scores.numpy().mean(1) + np.eye(17)) / 2
        a /= a.sum(-1, keepdims=True)
        rollout = np.einsum("nij,njk->nik", a, rollout)
    exp = gs.attention_rollout(model, X, target=0)
    np.testing.assert_allclose(exp.attributions, rollout[:, 0, 1:].reshape(3, 4, 4), rtol=1e-4, atol=1e-6)


class Gained(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Dense(3)

    def call(self, x, gain=None, training=None):
        out = self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))
        return out if gain is None else out * gain


def test_keras_forward_kwargs_reach_the_model():
    keras.utils.set_random_seed(2)
    model = Gained()
    gain = tf.constant([[1.0, -2.0, 0.5]])
    xt = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        s = tf.reduce_sum(model(xt, gain=gain, training=False)[:, 1])
    ref = tape.gradient(s, xt).numpy()
    exp = gs.saliency(model, X, target=1, forward_kwargs={"gain": gain})
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gs.predict(model, X, forward_kwargs={"gain": gain}),
                               model(xt, gain=gain, training=False).numpy(), rtol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam",
                                    "scorecam"])
def test_layer_input_on_every_cam_method(method):
    """The input of conv "c2" is the output of ReLU "r1": every CAM method gives the same map either way."""
    keras.utils.set_random_seed(7)
    inp = keras.Input((12, 12, 3))
    h = keras.layers.ReLU(name="r1")(keras.layers.Conv2D(5, 3, padding="same", name="c1")(inp))
    h = keras.layers.ReLU(name="r2")(keras.layers.Conv2D(6, 3, padding="same", name="c2")(h))
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype(np.float32)
    via_input = gs.explain(model, x, method, target=2, layer="c2", layer_input=True)
    via_output = gs.explain(model, x, method, target=2, layer="r1")
    np.testing.assert_allclose(via_input.attributions, via_output.attributions, rtol=1e-5, atol=1e-7)


def test_cam_weighing_compiles_once_per_method_not_per_call():
    """The CAM weighing runs as one compiled function per weighing function (Ops.fuse): repeated
    calls, guided or on a list of layers, reuse it instead of tracing and keeping a new one."""
    from gradsight.backends.keras import ops as keras_ops

    inp = keras.Input((12, 12, 3))
    h = keras.layers.ReLU(name="r1")(keras.layers.Conv2D(4, 3, padding="same")(inp))
    h = keras.layers.ReLU(name="r2")(keras.layers.Conv2D(4, 3, padding="same")(h))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    x = np.random.default_rng(1).normal(size=(2, 12, 12, 3)).astype(np.float32)
    calls = [lambda: gs.gradcam(model, x, layer="r2", guided=True),
             lambda: gs.gradcam(model, x, layer=["r1", "r2"], gate="guided"),
             lambda: gs.layercam(model, x, layer="r2")]
    for call in calls:
        call()
    kept = len(keras_ops._FUSED)
    for _ in range(3):
        for call in calls:
            call()
    assert len(keras_ops._FUSED) == kept
