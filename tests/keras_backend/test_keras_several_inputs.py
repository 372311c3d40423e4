"""Several inputs on Keras: a functional model with two ``keras.Input`` (an image and a vector,
concatenated), called as ``model([x1, x2])``, and the same model with dict inputs. Numbers against
``tf.GradientTape`` by hand and against a PyTorch twin holding the same weights."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from test_keras_state import fingerprint  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.errors import InputError  # noqa: E402
from helpers import assert_rel  # noqa: E402

RNG = np.random.default_rng(0)
IMG = RNG.standard_normal((3, 10, 10, 3)).astype(np.float32)
VEC = (4 * RNG.standard_normal((3, 5))).astype(np.float32)


def build(dict_inputs: bool = False) -> keras.Model:
    keras.utils.set_random_seed(1)
    img, vec = keras.Input((10, 10, 3), name="img"), keras.Input((5,), name="vec")
    f = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv")(img)
    f = keras.layers.GlobalAveragePooling2D()(f)
    g = keras.layers.Dense(6, activation="tanh", name="vec_fc")(vec)
    out = keras.layers.Dense(3, name="fc")(keras.layers.Concatenate()([f, g]))
    return keras.Model({"img": img, "vec": vec} if dict_inputs else [img, vec], out)


def tape_grads(model: keras.Model, target: int, img: np.ndarray = IMG, vec: np.ndarray = VEC) -> list[np.ndarray]:
    a, b = tf.constant(img), tf.constant(vec)
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        score = tf.reduce_sum(model([a, b])[:, target])
    return [g.numpy() for g in tape.gradient(score, [a, b])]


def test_saliency_and_dict_inputs_match_gradient_tape() -> None:
    model = build()
    exp = gs.saliency(model, (IMG, VEC), target=2)
    ref = tape_grads(model, 2)
    assert_rel(exp.attributions[0], ref[0], 1e-5)
    assert_rel(exp.attributions[1], ref[1], 1e-5)
    m = np.abs(ref[0]).max(-1)  # channels-last image: max over the last axis
    lo, hi = m.min((1, 2), keepdims=True), m.max((1, 2), keepdims=True)
    assert_rel(exp.heatmaps[0], (m - lo) / (hi - lo), 1e-5)
    assert exp.heatmaps[1] is None
    named = build(dict_inputs=True)
    d = gs.saliency(named, {"vec": VEC, "img": IMG}, target=2)
    assert list(d.attributions) == ["vec", "img"]
    assert_rel(d.attributions["img"], ref[0], 1e-5)
    assert_rel(d.attributions["vec"], ref[1], 1e-5)
    with pytest.raises(InputError, match=r"x\[1\] has shape \(3, 6\)"):  # checked against the model's own input
        gs.saliency(model, (IMG, np.zeros((3, 6), np.float32)))


def test_gradcam_matches_gradient_tape() -> None:
    model = build()
    conv = model.get_layer("conv")
    inner = keras.Model(model.inputs, [conv.output, model.output])
    a, b = tf.constant(IMG), tf.constant(VEC)
    with tf.GradientTape() as tape:
        act, out = inner([a, b])
        score = tf.reduce_sum(out[:, 1])
    g = tape.gradient(score, act).numpy()
    cam = np.maximum((g.mean((1, 2), keepdims=True) * act.numpy()).sum(-1), 0)
    exp = gs.gradcam(model, [IMG, VEC], target=1, layer="conv")
    assert_rel(exp.attributions, cam, 1e-5)
    assert exp.heatmaps.shape == (3, 10, 10)  # resized to the image input


def test_same_numbers_as_a_pytorch_twin() -> None:
    torch = pytest.importorskip("torch")
    model = build()
    w = {layer.name: [v.numpy() for v in layer.weights] for layer in model.layers if layer.weights}

    class Twin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.vec, self.fc = torch.nn.Linear(5, 6), torch.nn.Linear(10, 3)

        def forward(self, img: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
            # Keras "same" with stride 2 on 10 pixels pads 0 before, 1 after (PyTorch pads both sides)
            f = torch.relu(self.conv(torch.nn.functional.pad(img, (0, 1, 0, 1))[..., :11, :11]))
            return self.fc(torch.cat([f.mean((2, 3)), torch.tanh(self.vec(vec))], 1))

    twin = Twin().eval()
    twin.conv.padding = (0, 0)
    with torch.no_grad():
        twin.conv.weight.copy_(torch.from_numpy(w["conv"][0].transpose(3, 2, 0, 1)))
        twin.conv.bias.copy_(torch.from_numpy(w["conv"][1]))
        for name, lin in (("vec_fc", twin.vec), ("fc", twin.fc)):
            lin.weight.copy_(torch.from_numpy(w[name][0].T))
            lin.bias.copy_(torch.from_numpy(w[name][1]))
    img_t = torch.from_numpy(IMG.transpose(0, 3, 1, 2).copy())
    vec_t = torch.from_numpy(VEC)
    np.testing.assert_allclose(gs.predict(twin, (img_t, vec_t)), gs.predict(model, (IMG, VEC)), rtol=1e-5, atol=1e-6)
    for method, opts in (("saliency", {}), ("integrated_gradients", {"steps": 8, "baseline": (0.0, 1.0)})):
        k = gs.explain(model, (IMG, VEC), method, target=0, **opts)
        t = gs.explain(twin, (img_t, vec_t), method, target=0, **opts)
        assert_rel(k.attributions[0], t.attributions[0].transpose(0, 2, 3, 1), 1e-4)
        assert_rel(k.attributions[1], t.attributions[1], 1e-4)


def test_smoothgrad_and_ig_do_not_depend_on_batch_size() -> None:
    model = build()
    for method, opts in (("smoothgrad", {"samples": 4, "seed": 0}), ("integrated_gradients", {"steps": 6})):
        a, b = (gs.explain(model, (IMG, VEC), method, target=1, batch_size=s, **opts) for s in (2, 32))
        for x, y in zip(a.attributions, b.attributions):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_errors_and_model_left_unchanged() -> None:
    model = build()
    before = fingerprint(model)
    with pytest.raises(InputError, match=r"x\[0\] has 3, x\[1\] has 2"):
        gs.saliency(model, (IMG, VEC[:2]))
    with pytest.raises(InputError, match="forward_args"):
        gs.saliency(model, (IMG, VEC.astype(np.int32)))
    gs.smoothgrad(model, (IMG, VEC), samples=2)
    gs.gradcam(model, (IMG, VEC))
    assert fingerprint(model) == before
