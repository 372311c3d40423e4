"""Several inputs (``x`` a tuple, list or dict), PyTorch: each input explained, numbers against
autograd by hand (plain ``torch.autograd.grad`` of the same target w.r.t. each input), SmoothGrad's
documented noise drawn again in the test, Grad-CAM from hooks; typed errors; the model unchanged.
The Keras side is in ``tests/keras_backend/test_keras_several_inputs.py``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import gradsight as gs  # noqa: E402
from gradsight.errors import InputError  # noqa: E402
from helpers import assert_rel  # noqa: E402
from test_torch_state import fingerprint  # noqa: E402

GEN = torch.Generator().manual_seed(0)
IMG = torch.randn(3, 3, 10, 10, generator=GEN)
VEC = torch.randn(3, 5, generator=GEN) * 4.0  # a range unlike the image's: per-input noise scale matters


class ImageAndVector(nn.Module):
    """An image branch (conv, stride 2) and a vector branch, concatenated before the classifier."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.vec = nn.Linear(5, 6)
        self.fc = nn.Linear(4 + 6, 3)

    def forward(self, img: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.conv(img)).mean((2, 3))
        return self.fc(torch.cat([f, torch.tanh(self.vec(vec))], 1))


class Tokens(nn.Module):
    """A float image and integer token ids (passed through forward_args)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv, self.emb, self.fc = nn.Conv2d(3, 4, 3), nn.Embedding(7, 4), nn.Linear(8, 2)

    def forward(self, img: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([torch.relu(self.conv(img)).mean((2, 3)), self.emb(ids).mean(1)], 1))


class RGBAndDepth(nn.Module):
    """Two images: RGB and a 1-channel depth map (the first convolution takes 3 channels)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.rgb, self.depth, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(1, 2, 3, padding=1), nn.Linear(6, 2)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([torch.relu(self.rgb(rgb)).mean((2, 3)), torch.relu(self.depth(depth)).mean((2, 3))], 1))


def grads(model: nn.Module, target: int, img: torch.Tensor = IMG, vec: torch.Tensor = VEC) -> tuple[np.ndarray, ...]:
    a, b = img.clone().requires_grad_(True), vec.clone().requires_grad_(True)
    ga, gb = torch.autograd.grad(model(a, b)[:, target].sum(), [a, b])
    return ga.numpy(), gb.numpy()


def test_saliency_explains_each_input_as_autograd_does() -> None:
    model = ImageAndVector().eval()
    exp = gs.saliency(model, (IMG, VEC), target=2)
    ref_img, ref_vec = grads(model, 2)
    assert isinstance(exp.attributions, tuple) and len(exp.attributions) == 2 and len(exp) == 3
    assert_rel(exp.attributions[0], ref_img, 1e-6)
    assert_rel(exp.attributions[1], ref_vec, 1e-6)
    # heat maps: the image's max over channels of |gradient|, min-max per sample; None for the vector
    m = np.abs(ref_img).max(1)
    lo, hi = m.min((1, 2), keepdims=True), m.max((1, 2), keepdims=True)
    assert_rel(exp.heatmaps[0], (m - lo) / (hi - lo), 1e-6)
    assert exp.heatmaps[1] is None
    np.testing.assert_allclose(exp.outputs, model(IMG, VEC).detach().numpy(), rtol=1e-6)
    assert len(exp.overlay()) == 3  # smoke: pictures are the image input's maps
    # a list gives a list, input x gradient multiplies each input by its own gradient
    ixg = gs.input_x_gradient(model, [IMG, VEC], target=2)
    assert isinstance(ixg.attributions, list)
    assert_rel(ixg.attributions[1], ref_vec * VEC.numpy(), 1e-6)


def test_two_images_each_get_a_heat_map() -> None:
    model = RGBAndDepth().eval()
    depth = torch.rand(3, 1, 6, 6, generator=GEN)  # 1 channel and another size: no RGB check on it
    exp = gs.saliency(model, (IMG, depth), target=1)
    a, b = IMG.clone().requires_grad_(True), depth.clone().requires_grad_(True)
    ga, gb = torch.autograd.grad(model(a, b)[:, 1].sum(), [a, b])
    assert_rel(exp.attributions[1], gb.numpy(), 1e-6)
    m = np.abs(gb.numpy())[:, 0]
    lo, hi = m.min((1, 2), keepdims=True), m.max((1, 2), keepdims=True)
    assert_rel(exp.heatmaps[1], (m - lo) / (hi - lo), 1e-6)
    assert exp.heatmaps[0].shape == (3, 10, 10)


def test_top_k_targets_give_a_k_axis_in_every_input() -> None:
    model = ImageAndVector().eval()
    exp = gs.saliency(model, (IMG, VEC), target=gs.targets.TopK(2))
    assert exp.attributions[0].shape == (3, 2, 3, 10, 10) and exp.heatmaps[0].shape == (3, 2, 10, 10)
    for i in range(3):
        for j in range(2):
            ref_img, ref_vec = grads(model, int(exp.targets[i, j]))
            assert_rel(exp.attributions[0][i, j], ref_img[i], 1e-6)
            assert_rel(exp.attributions[1][i, j], ref_vec[i], 1e-6)


def test_dict_inputs_are_keyword_arguments() -> None:
    model = ImageAndVector().eval()
    exp = gs.saliency(model, {"vec": VEC, "img": IMG}, target=0)
    ref_img, ref_vec = grads(model, 0)
    assert list(exp.attributions) == ["vec", "img"]
    assert_rel(exp.attributions["img"], ref_img, 1e-6)
    assert_rel(exp.attributions["vec"], ref_vec, 1e-6)
    assert exp.heatmaps["vec"] is None and exp.heatmaps["img"].shape == (3, 10, 10)


def test_integrated_gradients_on_a_joint_path_independent_of_batch_size() -> None:
    model = ImageAndVector().eval()
    base_img, base_vec = torch.zeros_like(IMG), torch.full_like(VEC, 0.5)
    steps = 12
    # reference: the riemann_middle sum of autograd gradients along x' + a (x - x'), every input at once
    acc = [np.zeros_like(IMG.numpy()), np.zeros_like(VEC.numpy())]
    for i in range(steps):
        a = (i + 0.5) / steps
        g = grads(model, 1, base_img + a * (IMG - base_img), base_vec + a * (VEC - base_vec))
        acc = [s + gi / steps for s, gi in zip(acc, g)]
    ref = (acc[0] * (IMG - base_img).numpy(), acc[1] * (VEC - base_vec).numpy())
    runs = [
        gs.integrated_gradients(model, (IMG, VEC), target=1, steps=steps, rule="riemann_middle",
                                baseline=(0.0, base_vec), batch_size=b)
        for b in (1, 64)
    ]
    for exp in runs:
        assert_rel(exp.attributions[0], ref[0], 1e-5)
        assert_rel(exp.attributions[1], ref[1], 1e-5)
    np.testing.assert_allclose(runs[0].attributions[1], runs[1].attributions[1], rtol=1e-5, atol=1e-7)
    # completeness over both inputs: sum of all attributions ~ f(x) - f(x') (ReLU kinks: not exact),
    # and extras["delta"] is exactly that sum's error
    gl = gs.integrated_gradients(model, (IMG, VEC), target=1, steps=64, baseline=(0.0, base_vec))
    out = (model(IMG, VEC)[:, 1] - model(base_img, base_vec)[:, 1]).detach().numpy()
    total = gl.attributions[0].sum((1, 2, 3)) + gl.attributions[1].sum(1)
    np.testing.assert_allclose(total, out, atol=5e-3 * np.abs(out).max())
    np.testing.assert_allclose(gl.extras["delta"], total - out, atol=1e-6)


def test_smoothgrad_noises_every_input_by_its_own_range() -> None:
    model = ImageAndVector().eval()
    samples, noise, seed = 5, 0.2, 3
    # the documented draw: copy s's noise from default_rng([seed, s]) over the inputs flattened in order,
    # sigma = noise x each sample's range within each input
    img, vec = IMG.numpy().reshape(3, -1), VEC.numpy()
    sig_img = noise * (img.max(1) - img.min(1))[:, None]
    sig_vec = noise * (vec.max(1) - vec.min(1))[:, None]
    acc = [0.0, 0.0]
    for s in range(samples):
        eps = np.random.default_rng([seed, s]).standard_normal((3, img.shape[1] + 5), dtype=np.float32)
        noisy_img = torch.from_numpy((img + eps[:, : img.shape[1]] * sig_img).reshape(IMG.shape).astype(np.float32))
        noisy_vec = torch.from_numpy((vec + eps[:, img.shape[1]:] * sig_vec).astype(np.float32))
        g = grads(model, 0, noisy_img, noisy_vec)
        acc = [a + gi / samples for a, gi in zip(acc, g)]
    for batch_size in (2, 32):
        exp = gs.smoothgrad(model, (IMG, VEC), target=0, samples=samples, noise=noise, seed=seed,
                            batch_size=batch_size)
        assert_rel(exp.attributions[0], acc[0], 1e-5)
        assert_rel(exp.attributions[1], acc[1], 1e-5)


def test_gradcam_on_a_two_input_model_matches_hooks() -> None:
    model = ImageAndVector().eval()
    seen: dict[str, torch.Tensor] = {}
    handle = model.conv.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
    try:
        out = model(IMG, VEC)
        (g,) = torch.autograd.grad(out[:, 1].sum(), [seen["a"]])
    finally:
        handle.remove()
    a = seen["a"].detach()
    cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    up = F.interpolate(cam[:, None], size=(10, 10), mode="bilinear", align_corners=False)[:, 0].numpy()
    lo, hi = up.min((1, 2), keepdims=True), up.max((1, 2), keepdims=True)
    exp = gs.gradcam(model, (IMG, VEC), target=1, layer="conv")
    assert_rel(exp.attributions, cam.numpy(), 1e-5)  # one map, at the layer: (N, 5, 5)
    assert_rel(exp.heatmaps, (up - lo) / np.where(hi > lo, hi - lo, 1), 1e-5)  # resized to the image input
    auto = gs.explain(model, (IMG, VEC), "gradcam", target=1)  # layer="auto" finds the conv
    assert auto.layer == "conv"


def test_batch_sizes_must_agree_and_integer_inputs_go_through_forward_args() -> None:
    model = ImageAndVector().eval()
    with pytest.raises(InputError, match=r"x\[0\] has 3, x\[1\] has 2"):
        gs.saliency(model, (IMG, VEC[:2]))
    tok = Tokens().eval()
    ids = torch.randint(0, 7, (3, 4), generator=GEN)
    with pytest.raises(InputError, match="forward_args"):
        gs.saliency(tok, (IMG, ids))
    # what the message says works: the ids reach the model unexplained
    exp = gs.saliency(tok, (IMG,), target=1, forward_args=(ids,))
    x = IMG.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(tok(x, ids)[:, 1].sum(), [x])
    assert_rel(exp.attributions[0], ref.numpy(), 1e-6)
    with pytest.raises(InputError, match="one image input"):
        gs.scorecam(model, (IMG, VEC))
    with pytest.raises(InputError, match="empty"):
        gs.saliency(model, ())


def test_predict_takes_several_inputs() -> None:
    model = ImageAndVector().eval()
    np.testing.assert_allclose(gs.predict(model, (IMG, VEC), batch_size=2), model(IMG, VEC).detach().numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "integrated_gradients", "guided_backprop", "gradcam"])
def test_model_left_unchanged(method: str) -> None:
    model = ImageAndVector().train()
    img, vec = IMG.clone(), VEC.clone()
    before = fingerprint(model)
    opts = {"samples": 2} if method == "smoothgrad" else {"steps": 4} if method == "integrated_gradients" else {}
    gs.explain(model, (img, vec), method, **opts)
    with pytest.raises(InputError):
        gs.explain(model, (img, vec[:1]), method, **opts)
    assert fingerprint(model) == before
    assert torch.equal(img, IMG) and torch.equal(vec, VEC) and not img.requires_grad
