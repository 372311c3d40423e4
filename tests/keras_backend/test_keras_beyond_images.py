"""Tables (N, F), 1-D signals (N, L, C) and volumes (N, D, H, W, C) in Keras.

References: ``tf.GradientTape`` for gradients, ``tf.image.resize`` and a numpy
half-pixel linear interpolation for the resized maps, and the PyTorch backend on the
same weights for SmoothGrad's noise (drawn channels first in both).
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import gradsight as gs  # noqa: E402

CAMS = [m for m, spec in gs.methods.METHODS.items() if spec.uses_layer and m != "attention_rollout"]


def _positive_head(model: keras.Model) -> keras.Model:
    """No head bias and one all-positive column: the top-1 logit is > 0, so Grad-CAM maps are not all zero."""
    dense = model.layers[-1]
    k = dense.kernel.numpy()
    k[:, 0] = np.abs(k[:, 0])
    dense.set_weights([k, np.zeros_like(dense.bias.numpy())])
    return model


def _mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])


def _cnn1d() -> keras.Model:
    keras.utils.set_random_seed(1)
    return _positive_head(keras.Sequential([
        keras.Input((40, 2)), keras.layers.Conv1D(5, 5, padding="same", activation="relu"),
        keras.layers.Conv1D(7, 3, strides=3, activation="relu", name="last"),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3),
    ]))


def _cnn3d() -> keras.Model:
    keras.utils.set_random_seed(2)
    return _positive_head(keras.Sequential([
        keras.Input((6, 8, 10, 2)), keras.layers.Conv3D(4, 3, padding="same", activation="relu"),
        keras.layers.Conv3D(6, 3, strides=2, activation="relu", name="last"),
        keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(3),
    ]))


def _tape(model: keras.Model, split: int, x: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, dy/dA) at the output of the first ``split`` layers (``split=0``: the input)."""
    a = tf.constant(x)
    for layer in model.layers[:split]:
        a = layer(a)
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = a
        for layer in model.layers[split:]:
            y = layer(y)
        score = tf.reduce_sum(tf.gather(y, classes, axis=1, batch_dims=1))
    return a.numpy(), tape.gradient(score, a).numpy()


def _norm(m: np.ndarray) -> np.ndarray:
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1)).reshape(m.shape)


def _interp(a: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Linear resize along ``axis`` with half-pixel centres (np.interp clamps at both ends)."""
    n_in = a.shape[axis]
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    return np.apply_along_axis(lambda v: np.interp(src, np.arange(n_in), v), axis, a)


def test_table_gradient_methods_match_the_tape():
    model = _mlp()
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    sal = gs.saliency(model, x)
    assert sal.attributions.shape == (4, 6) and sal.heatmaps is None
    _, g = _tape(model, 0, x, sal.targets)
    np.testing.assert_allclose(sal.attributions, g, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gs.input_x_gradient(model, x).attributions, g * x, rtol=1e-5, atol=1e-7)
    ig = gs.integrated_gradients(model, x, steps=8, rule="riemann_middle")
    ref = sum(_tape(model, 0, x * (k + 0.5) / 8, sal.targets)[1] for k in range(8)) / 8 * x
    np.testing.assert_allclose(ig.attributions, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", CAMS)
def test_cam_methods_refuse_tables(method):
    with pytest.raises(gs.InputError, match="no spatial axes"):
        gs.explain(_mlp(), np.zeros((2, 6), "float32"), method)


def test_signal_cams_match_the_tape_and_tf_image_resize():
    model = _cnn1d()
    x = np.random.default_rng(1).standard_normal((3, 40, 2)).astype("float32")
    exp = gs.gradcam(model, x)
    assert exp.layer == "last" and exp.kind == "signal"
    a, g = _tape(model, 2, x, exp.targets)
    cam = np.maximum((g.mean(1, keepdims=True) * a).sum(-1), 0)
    assert (cam.max(1) > 0).all()
    np.testing.assert_allclose(exp.attributions, cam, rtol=1e-5, atol=1e-6)
    up = tf.image.resize(cam[:, :, None, None], (40, 1), method="bilinear")[:, :, 0, 0].numpy()
    np.testing.assert_allclose(exp.heatmaps, _norm(up), atol=1e-5)

    hires = gs.hirescam(model, x, layer="last")
    np.testing.assert_allclose(hires.attributions, np.maximum((g * a).sum(-1), 0), rtol=1e-5, atol=1e-6)
    sal = gs.saliency(model, x)
    g_in = _tape(model, 0, x, sal.targets)[1]
    np.testing.assert_allclose(sal.heatmaps, _norm(np.abs(g_in).max(-1)), atol=1e-6)


def test_signal_scorecam_and_guided_gradcam():
    model = _cnn1d()
    x = np.random.default_rng(2).standard_normal((2, 40, 2)).astype("float32")
    sc = gs.scorecam(model, x, layer="last", batch_size=4)
    a, _ = _tape(model, 2, x, sc.targets)
    masks = _interp(a, 1, 40)  # (N, L, C)
    lo, hi = masks.min(1, keepdims=True), masks.max(1, keepdims=True)
    masks = np.where(hi > lo, (masks - lo) / np.where(hi > lo, hi - lo, 1), 0)
    s = np.stack([np.take_along_axis(model(x * masks[..., k:k + 1]).numpy(), sc.targets[:, None], 1)[:, 0]
                  for k in range(a.shape[-1])], 1)
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    np.testing.assert_allclose(sc.attributions, np.maximum((w[:, None] * a).sum(-1), 0), rtol=1e-4, atol=1e-5)

    gg = gs.guided_gradcam(model, x, layer="last")
    gb = gs.guided_backprop(model, x).attributions
    np.testing.assert_allclose(gg.attributions, gb * _interp(gg.extras["cam"], 1, 40)[..., None], rtol=1e-4,
                               atol=1e-6)


def test_volume_gradcam_matches_the_tape_and_a_trilinear_reference():
    model = _cnn3d()
    x = np.random.default_rng(3).standard_normal((2, 6, 8, 10, 2)).astype("float32")
    exp = gs.gradcam(model, x)
    assert exp.layer == "last" and exp.kind == "volume"
    a, g = _tape(model, 2, x, exp.targets)
    cam = np.maximum((g.mean((1, 2, 3), keepdims=True) * a).sum(-1), 0)
    assert (cam.reshape(2, -1).max(1) > 0).all()
    np.testing.assert_allclose(exp.attributions, cam, rtol=1e-5, atol=1e-6)
    up = _interp(_interp(_interp(cam, 1, 6), 2, 8), 3, 10)
    np.testing.assert_allclose(exp.heatmaps, _norm(up), atol=1e-5)
    eig = gs.eigencam(model, x, layer="last")
    assert eig.attributions.shape == (2, 2, 3, 4)  # smoke: the SVD maths is checked on signals and images


def test_smoothgrad_on_signals_equals_pytorch_on_the_same_weights():
    torch = pytest.importorskip("torch")
    keras.utils.set_random_seed(4)
    km = keras.Sequential([keras.Input((30, 2)), keras.layers.Conv1D(4, 3, activation="relu"),
                           keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    conv, dense = km.layers[0], km.layers[-1]
    tm = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1),
                             torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    with torch.no_grad():
        tm[0].weight.copy_(torch.from_numpy(conv.kernel.numpy().transpose(2, 1, 0)))
        tm[0].bias.copy_(torch.from_numpy(conv.bias.numpy()))
        tm[4].weight.copy_(torch.from_numpy(dense.kernel.numpy().T))
        tm[4].bias.copy_(torch.from_numpy(dense.bias.numpy()))
    x = np.random.default_rng(5).standard_normal((2, 30, 2)).astype("float32")
    ek = gs.smoothgrad(km, x, samples=4, seed=7)
    et = gs.smoothgrad(tm, torch.from_numpy(x.transpose(0, 2, 1).copy()), samples=4, seed=7)
    np.testing.assert_allclose(ek.attributions, et.attributions.transpose(0, 2, 1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ek.heatmaps, et.heatmaps, atol=1e-5)


def test_keras_signal_and_volume_pictures(tmp_path):
    from PIL import Image

    x = np.random.default_rng(1).standard_normal((1, 40, 2)).astype("float32")
    (sig,) = gs.gradcam(_cnn1d(), x).save(tmp_path / "s", x, plain=True)
    v = np.random.default_rng(3).standard_normal((1, 6, 8, 10, 2)).astype("float32")
    (vol,) = gs.gradcam(_cnn3d(), v).save(tmp_path / "v", v)
    for path in (sig, vol):
        with Image.open(path) as im:
            pix = np.asarray(im.convert("RGB"))
        assert len(np.unique(pix.reshape(-1, 3), axis=0)) > 50


@pytest.mark.parametrize("make, shape, order", [
    (_cnn1d, (2, 2, 40), r"\(0, 2, 1\)"), (_cnn3d, (2, 2, 6, 8, 10), r"\(0, 2, 3, 4, 1\)"),
])
def test_channels_first_signals_and_volumes_say_how_to_transpose(make, shape, order):
    with pytest.raises(gs.InputError, match=order):
        gs.saliency(make(), np.zeros(shape, "float32"))
