"""Tables (N, F), 1-D signals (N, C, L) and volumes (N, C, D, H, W) in PyTorch.

Every number is checked against a hand-written reference in plain torch autograd and
``F.interpolate``; every picture kind is written as a real PNG and read back.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gradsight as gs
from gradsight import render
from gradsight.render._plots import NEGATIVE, POSITIVE

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

CAMS = [m for m, spec in gs.methods.METHODS.items() if spec.uses_layer and m != "attention_rollout"]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def _positive_head(model: nn.Sequential) -> nn.Sequential:
    """No head bias and one all-positive row: the top-1 logit is > 0, so Grad-CAM maps are not all zero."""
    with torch.no_grad():
        model[-1].bias.zero_()
        model[-1].weight[0].abs_()
    return model.eval()


def _cnn1d() -> nn.Module:
    torch.manual_seed(1)
    return _positive_head(nn.Sequential(
        nn.Conv1d(2, 5, 5, padding=2), nn.ReLU(), nn.Conv1d(5, 7, 3, stride=3), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(7, 3),
    ))


def _cnn3d() -> nn.Module:
    torch.manual_seed(2)
    return _positive_head(nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 6, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(6, 3),
    ))


def _grad(model: nn.Module, x: torch.Tensor, targets: np.ndarray) -> torch.Tensor:
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xr).gather(1, torch.as_tensor(targets)[:, None]).sum(), xr)
    return g


def _layer_grad(model: nn.Module, split: int, x: torch.Tensor, targets: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(A, dy/dA) at the output of ``model[:split]``."""
    a = model[:split](x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model[split:](a).gather(1, torch.as_tensor(targets)[:, None]).sum(), a)
    return a.detach(), g


def _norm(m: np.ndarray) -> np.ndarray:
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1)).reshape(m.shape)


# ----------------------------------------------------------------------------- tables


def test_table_gradient_methods_match_autograd():
    model, x = _mlp(), torch.randn(4, 6)
    sal = gs.saliency(model, x)
    assert sal.attributions.shape == (4, 6) and sal.heatmaps is None and sal.kind == "table"
    g = _grad(model, x, sal.targets)
    np.testing.assert_allclose(sal.attributions, g.numpy(), rtol=1e-5, atol=1e-7)
    ixg = gs.input_x_gradient(model, x)
    np.testing.assert_allclose(ixg.attributions, (g * x).numpy(), rtol=1e-5, atol=1e-7)

    ig = gs.integrated_gradients(model, x, steps=8, rule="riemann_middle")
    ref = sum(_grad(model, x * (k + 0.5) / 8, sal.targets) for k in range(8)) / 8 * x
    np.testing.assert_allclose(ig.attributions, ref.numpy(), rtol=1e-4, atol=1e-6)

    sg = gs.smoothgrad(model, x, samples=5, noise=0.2, seed=3)
    xn = x.numpy()
    sigma = 0.2 * (xn.max(1) - xn.min(1))
    ref = np.zeros_like(xn)
    for s in range(5):  # the documented noise: numpy's generator seeded by (seed, copy)
        eps = np.random.default_rng([3, s]).standard_normal(xn.shape, dtype=np.float32) * sigma[:, None]
        ref += _grad(model, torch.from_numpy(xn + eps), sal.targets).numpy() / 5
    np.testing.assert_allclose(sg.attributions, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", CAMS)
def test_cam_methods_refuse_tables_with_the_reason(method):
    with pytest.raises(gs.InputError, match="no spatial axes"):
        gs.explain(_mlp(), torch.randn(2, 6), method)


def test_feature_bars_png_shows_signed_top_features(tmp_path):
    model, x = _mlp(), torch.randn(2, 6)
    exp = gs.saliency(model, x)
    names = [f"f{j}" for j in range(6)]
    paths = exp.save(tmp_path, feature_names=names, top=4)
    assert [p.name for p in paths] == ["saliency_000.png", "saliency_001.png"]
    with Image.open(paths[0]) as im:
        pix = np.asarray(im.convert("RGB"))
    attr = exp.attributions[0]
    top = np.argsort(-np.abs(attr))[:4]
    red = np.all(pix == POSITIVE, axis=-1).sum()
    blue = np.all(pix == NEGATIVE, axis=-1).sum()
    assert (red > 0) == bool((attr[top] > 0).any()) and (blue > 0) == bool((attr[top] < 0).any())
    # bars are as long as |value|: the first (largest) bar is the longest
    rows = [np.all((pix == POSITIVE) | (pix == NEGATIVE), axis=-1).sum(1)]
    widths = [w for w in rows[0] if w > 0]
    assert max(widths) == widths[0]


def test_feature_bars_errors():
    with pytest.raises(gs.InputError, match="2 feature names for 3"):
        render.feature_bars(np.ones(3), names=["a", "b"])
    with pytest.raises(gs.InputError, match="top"):
        render.feature_bars(np.ones(3), top=0)


# ----------------------------------------------------------------------------- 1-D signals


def test_signal_gradcam_matches_reference_and_is_resized_linearly():
    torch.manual_seed(5)
    model, x = _cnn1d(), torch.randn(4, 2, 40)
    exp = gs.gradcam(model, x)
    assert exp.layer == "3"  # auto: the last Conv1d's ReLU (same length)
    assert (exp.attributions.max(1) > 0).all()  # maps that are not all zero
    a, g = _layer_grad(model, 4, x, exp.targets)
    cam = torch.relu((g.mean(2, keepdim=True) * a).sum(1))
    np.testing.assert_allclose(exp.attributions, cam.numpy(), rtol=1e-5, atol=1e-6)
    up = F.interpolate(cam[:, None], size=40, mode="linear", align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(exp.heatmaps, _norm(up), atol=1e-5)

    hires = gs.hirescam(model, x, layer="3")
    np.testing.assert_allclose(hires.attributions, torch.relu((g * a).sum(1)).numpy(), rtol=1e-5, atol=1e-6)
    lcam = gs.layercam(model, x, layer="3")
    np.testing.assert_allclose(lcam.attributions, torch.relu((torch.relu(g) * a).sum(1)).numpy(), rtol=1e-5, atol=1e-6)


def test_signal_gradient_methods_and_heatmaps():
    model, x = _cnn1d(), torch.randn(2, 2, 40)
    exp = gs.saliency(model, x)
    g = _grad(model, x, exp.targets)
    np.testing.assert_allclose(exp.attributions, g.numpy(), rtol=1e-5, atol=1e-7)
    assert exp.kind == "signal"
    np.testing.assert_allclose(exp.heatmaps, _norm(g.abs().amax(1).numpy()), atol=1e-6)


def test_signal_eigencam_scorecam_and_guided_match_references():
    model, x = _cnn1d(), torch.randn(2, 2, 40)
    a = model[:4](x).detach()
    eig = gs.eigencam(model, x, layer="3")
    m = a.double().permute(0, 2, 1)
    m = m - m.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    proj = (m @ vh[:, 0, :, None])[..., 0]
    total = a.double().sum(1)
    sign = torch.sign(((total - total.mean(1, keepdim=True)) * proj).sum(1))[:, None]
    np.testing.assert_allclose(eig.attributions, torch.relu(proj * sign).numpy(), rtol=1e-4, atol=1e-6)

    sc = gs.scorecam(model, x, layer="3", batch_size=4)
    masks = F.interpolate(a, size=40, mode="linear", align_corners=False)  # (N, C, L)
    lo, hi = masks.amin(2, keepdim=True), masks.amax(2, keepdim=True)
    masks = torch.where(hi > lo, (masks - lo) / (hi - lo), torch.zeros_like(masks))
    t = torch.as_tensor(sc.targets)
    with torch.no_grad():
        s = torch.stack([model(x * masks[:, k:k + 1]).gather(1, t[:, None])[:, 0] for k in range(a.shape[1])], 1)
    ref = torch.relu((torch.softmax(s.double(), 1)[..., None] * a.double()).sum(1))
    np.testing.assert_allclose(sc.attributions, ref.numpy(), rtol=1e-4, atol=1e-6)

    gg = gs.guided_gradcam(model, x, layer="3")
    gb = gs.guided_backprop(model, x).attributions
    cam = torch.as_tensor(gg.extras["cam"])
    up = F.interpolate(cam[:, None], size=40, mode="linear", align_corners=False).numpy()
    np.testing.assert_allclose(gg.attributions, gb * up, rtol=1e-5, atol=1e-7)


def test_signal_plot_png_band_follows_the_map(tmp_path):
    torch.manual_seed(5)
    model, x = _cnn1d(), torch.randn(4, 2, 40)
    exp = gs.gradcam(model, x)
    i = int(np.argmax(exp.heatmaps.max(1)))  # a sample whose map is not all zero (ReLU)
    assert exp.heatmaps[i].max() == 1.0
    paths = exp.save(tmp_path, x, plain=True)
    with Image.open(paths[i]) as im:
        pix = np.asarray(im.convert("RGB")).astype(int)
    strip = pix[-1]  # the solid band under the plot: the colormap of the map, resized to the width
    heat = exp.heatmaps[i]
    hot, cold = int(heat.argmax()), int(heat.argmin())
    width = strip.shape[0]
    col = lambda i: min(width - 1, int((i + 0.5) * width / 40))  # noqa: E731
    expected_hot = render.colorize(np.array([[1.0]]))[0, 0]
    assert np.abs(strip[col(hot)] - expected_hot).max() <= 40
    assert np.abs(strip[col(hot)] - strip[col(cold)]).sum() > 100  # the band's colour varies with the map
    assert len(np.unique(pix.reshape(-1, 3), axis=0)) > 50  # lines over the band: not blank


# ----------------------------------------------------------------------------- volumes


def test_volume_cams_match_reference_and_are_resized_trilinearly():
    model, x = _cnn3d(), torch.randn(2, 2, 6, 8, 10)
    exp = gs.gradcam(model, x)
    assert exp.layer == "3" and exp.kind == "volume"
    assert (exp.attributions.reshape(2, -1).max(1) > 0).all()
    a, g = _layer_grad(model, 4, x, exp.targets)
    cam = torch.relu((g.mean((2, 3, 4), keepdim=True) * a).sum(1))
    np.testing.assert_allclose(exp.attributions, cam.numpy(), rtol=1e-5, atol=1e-6)
    up = F.interpolate(cam[:, None], size=(6, 8, 10), mode="trilinear", align_corners=False)[:, 0].numpy()
    assert exp.heatmaps.shape == (2, 6, 8, 10)
    np.testing.assert_allclose(exp.heatmaps, _norm(up), atol=1e-5)

    pp = gs.gradcam_plus_plus(model, x, layer="3")
    g2, s = g * g, a.sum((2, 3, 4), keepdim=True)
    den = 2 * g2 + s * g2 * g
    alpha = torch.where(den != 0, g2 / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(den))
    w = (alpha * torch.relu(g)).sum((2, 3, 4), keepdim=True)
    np.testing.assert_allclose(pp.attributions, torch.relu((w * a).sum(1)).numpy(), rtol=1e-4, atol=1e-6)

    sal = gs.saliency(model, x)
    np.testing.assert_allclose(sal.heatmaps, _norm(_grad(model, x, sal.targets).abs().amax(1).numpy()), atol=1e-6)


def test_volume_strip_png(tmp_path):
    model, x = _cnn3d(), torch.randn(1, 2, 6, 8, 10)
    exp = gs.gradcam(model, x)
    (path,) = exp.save(tmp_path, x, plain=True)
    with Image.open(path) as im:
        pix = np.asarray(im.convert("RGB"))
    assert pix.shape[1] > 5 * pix.shape[0] // 2  # six slices side by side
    assert len(np.unique(pix.reshape(-1, 3), axis=0)) > 100


def test_signals_of_a_model_without_convolution_keep_the_gray_image_reading():
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 3)).eval()  # no conv: rank 3 stays (N, H, W)
    exp = gs.saliency(model, torch.randn(2, 4, 5))
    assert exp.kind == "image" and exp.heatmaps.shape == (2, 4, 5)


def test_resize_nd_matches_interpolate():
    rng = np.random.default_rng(0)
    for shape, size, mode in [((3, 7), (20,), "linear"), ((3, 20), (7,), "linear"),
                              ((2, 3, 4, 5), (6, 9, 11), "trilinear"), ((2, 5, 4, 3), (2, 3, 7), "trilinear")]:
        a = rng.standard_normal(shape).astype(np.float32)
        ref = F.interpolate(torch.from_numpy(a)[:, None], size=size, mode=mode, align_corners=False)[:, 0]
        np.testing.assert_allclose(gs.maps.resize(a, size), ref.numpy(), atol=1e-6)


@pytest.mark.parametrize("make, x, permute", [
    (_cnn1d, torch.randn(2, 40, 2), r"x.permute\(0, 2, 1\)"),
    (_cnn3d, torch.randn(2, 6, 8, 10, 2), r"x.permute\(0, 4, 1, 2, 3\)"),
])
def test_channels_last_signals_and_volumes_say_how_to_permute(make, x, permute):
    with pytest.raises(gs.InputError, match=permute):
        gs.saliency(make(), x)


class _EcaGate(nn.Module):
    """ECA-Net's channel gate: a Conv1d over the pooled channels, (N, 1, C) -> sigmoid weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv(x.mean((2, 3))[:, None])  # a 3-D "Conv" output after the last Conv2d
        return x * torch.sigmoid(w)[:, 0, :, None, None]


def test_auto_layer_skips_conv1d_gates_inside_an_image_cnn():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), _EcaGate(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3)).eval()
    exp = gs.gradcam(model, torch.randn(2, 3, 12, 12))
    assert exp.layer == "2" and exp.attributions.shape == (2, 10, 10)  # the gated 2-D map, not the gate's (N, 1, 8)
