"""The CAM family, Integrated Gradients and input x gradient against independent plain-torch
references (a few lines per formula), on a functional-ReLU model and on an in-place ReLU model
with a reused ReLU module; SmoothGrad's aggregates and new bases; layer lists and guided=True."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradsight as gs
from gradsight.methods.eigencam import principal_maps
from gradsight.targets import TopK
from helpers import assert_rel
from torch_nets import FunctionalNet, InplaceReusedNet, make, plain_act

NETS = [FunctionalNet, InplaceReusedNet]
TARGETS = [2, 4, 1]
SIZE = (16, 16)


@pytest.fixture(params=NETS, ids=lambda c: c.__name__)
def net(request):
    return make(request.param)


@pytest.fixture
def x():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


# --- references, written from the papers' formulas in plain torch ---
def layer_and_grad(model, x, targets):
    a = model.ref_features(x, plain_act).detach().requires_grad_(True)
    out = model.ref_head(a, plain_act)
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), torch.as_tensor(targets)].sum(), a)
    return a.detach().double(), g.double()


def ref_gradcam_plus_plus(a, g):
    g2, g3 = g**2, g**3
    den = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(den != 0, g2 / torch.where(den != 0, den, 1.0), 0.0)
    w = (alpha * F.relu(g)).sum((2, 3), keepdim=True)
    return F.relu((w * a).sum(1))


def ref_xgradcam(a, g):
    w = (a / (a.sum((2, 3), keepdim=True) + 1e-7) * g).sum((2, 3), keepdim=True)
    return F.relu((w * a).sum(1))


REF_GRADIENT_CAMS = {
    "gradcam_plus_plus": ref_gradcam_plus_plus,
    "xgradcam": ref_xgradcam,
    "layercam": lambda a, g: F.relu((F.relu(g) * a).sum(1)),
    "hirescam": lambda a, g: F.relu((g * a).sum(1)),
    "gradcam": lambda a, g: F.relu((g.mean((2, 3), keepdim=True) * a).sum(1)),
}


def ref_eigencam(a):
    maps = []
    for ai in a.double():
        m = ai.reshape(ai.shape[0], -1).T
        m = m - m.mean(0)
        p = m @ torch.linalg.svd(m, full_matrices=False).Vh[0]
        if torch.corrcoef(torch.stack([p, ai.sum(0).flatten()]))[0, 1] < 0:
            p = -p
        maps.append(F.relu(p).reshape(ai.shape[1:]))
    return torch.stack(maps)


def ref_scorecam(model, x, targets, a):
    idx = torch.arange(len(x))
    scores = []
    with torch.no_grad():
        for k in range(a.shape[1]):
            up = F.interpolate(a[:, k : k + 1].float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
            lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
            mask = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-30), 0.0)
            scores.append(model(x * mask)[idx, torch.as_tensor(targets)])
    w = torch.softmax(torch.stack(scores, 1).double(), dim=1)
    return F.relu((w[:, :, None, None] * a.double()).sum(1))


def ref_ig(model, x, targets, baseline, alphas, weights):
    total = torch.zeros_like(x, dtype=torch.float64)
    for a, w in zip(alphas, weights):
        xi = (baseline + float(a) * (x - baseline)).requires_grad_(True)
        out = model.ref_head(model.ref_features(xi, plain_act), plain_act)
        (g,) = torch.autograd.grad(out[torch.arange(len(x)), torch.as_tensor(targets)].sum(), xi)
        total += float(w) * g.double()
    return ((x - baseline).double() * total).numpy()


def upsample(maps):
    return F.interpolate(torch.as_tensor(maps)[:, None].float(), size=SIZE, mode="bilinear", align_corners=False)[:, 0]


def normalise(m):
    m = np.asarray(m, np.float64)
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1)).reshape(m.shape)


# --- the CAM family ---
@pytest.mark.parametrize("method", ["gradcam_plus_plus", "xgradcam", "layercam", "hirescam"])
def test_gradient_cams_match_reference(net, x, method):
    exp = gs.explain(net, x, method=method, target=TARGETS, layer=net.cam_layer)
    a, g = layer_and_grad(net, x, TARGETS)
    ref = REF_GRADIENT_CAMS[method](a, g).numpy()
    assert exp.layer == net.cam_layer and exp.attributions.dtype == np.float32
    assert_rel(exp.attributions, ref, 1e-5)
    assert_rel(exp.heatmaps, normalise(upsample(ref).numpy()), 1e-4)
    np.testing.assert_array_equal(exp.targets, TARGETS)


def test_gradcam_plus_plus_has_no_eps():
    """0 where the denominator is 0, and exactly g^2 / (2 g^2 + S g^3) elsewhere (no eps added)."""
    from gradsight.backends.torch import TorchBackend
    from gradsight.methods.gradcam_plus_plus import weigh

    a = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])  # S = 4
    g = torch.tensor([[[[1e-4, 0.0], [-1.0, 0.5]]]])
    cam = weigh(TorchBackend.ops, a, g, 1, (2, 3))
    alpha = np.array([1e-8 / (2e-8 + 4e-12), 0.0, 1.0 / (2.0 - 4.0), 0.25 / (0.5 + 4 * 0.125)])
    w = (alpha * np.maximum(g.numpy().ravel(), 0)).sum()
    np.testing.assert_allclose(cam.numpy().ravel(), np.maximum(w * a.numpy().ravel(), 0), rtol=1e-6)


def test_eigencam_matches_reference_and_ignores_target(net, x):
    exp = gs.eigencam(net, x, target=TARGETS, layer=net.cam_layer)
    with torch.no_grad():
        a = net.ref_features(x, plain_act)
    assert_rel(exp.attributions, ref_eigencam(a).numpy(), 1e-5)
    other = gs.eigencam(net, x, target=[0, 0, 0], layer=net.cam_layer)
    np.testing.assert_array_equal(other.attributions, exp.attributions)
    assert "ignores the target" in exp.extras["note"]
    with torch.no_grad():
        np.testing.assert_allclose(exp.scores, net(x)[torch.arange(3), torch.tensor(TARGETS)].numpy(), rtol=1e-6)


def eigen_maps(a):
    """gradsight's Eigen-CAM maps of numpy activations (N, C, h, w), with torch's ops."""
    from gradsight.backends.torch.ops import TorchOps

    return principal_maps(TorchOps(), torch.as_tensor(a, dtype=torch.float32), 1)


def test_eigencam_sign_rule(monkeypatch):
    """An SVD's sign is arbitrary: the map must correlate positively with sum_k A_k, for any sign
    the activations' principal direction has (here both signs of a rank-one blob pattern)."""
    from gradsight.backends.torch.ops import TorchOps

    rng = np.random.default_rng(0)
    blob = np.zeros((6, 6))
    blob[1:3, 3:5] = 1.0
    real = TorchOps.principal_projection
    for direction in (np.array([1.0, 2.0, 0.5, 1.5]), np.array([1.0, -2.0, 0.5, -1.5]), -np.ones(4)):
        a = blob[None, None] * direction[None, :, None, None] + 0.01 * rng.standard_normal((1, 4, 6, 6))
        m = eigen_maps(a)[0]
        np.testing.assert_allclose(m, ref_eigencam(torch.as_tensor(a, dtype=torch.float32)).numpy()[0], atol=1e-6)
        total = a[0].sum(0)
        proj = np.where(m > 0, m, 0)
        assert np.corrcoef(proj.ravel(), total.ravel())[0, 1] > 0 or np.all(m == 0)
        if direction.sum() > 0:  # the blob is where the channel sum is high: the map lights it
            assert np.unravel_index(m.argmax(), m.shape) in {(1, 3), (1, 4), (2, 3), (2, 4)}
        # the rule, not the eigensolver, picks the sign: a solver returning the opposite sign gives the same map
        with monkeypatch.context() as mp:
            mp.setattr(TorchOps, "principal_projection", lambda self, t, ax: -real(self, t, ax))
            np.testing.assert_allclose(eigen_maps(a)[0], m)


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (2, 40, 3, 4)], ids=["C<hw", "C>hw"])
def test_eigencam_projection_both_gram_sides(shape):
    """C x C covariance when C <= h*w, the h*w x h*w Gram matrix otherwise: both equal the SVD reference."""
    a = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    assert_rel(eigen_maps(a.numpy()), ref_eigencam(a).numpy(), 1e-5)


def test_scorecam_matches_reference_and_batch_size_does_not_matter(net, x):
    # InplaceReusedNet's bn3 output is mostly negative (a zero map): take the in-place ReLU after it
    layer = "relu" if isinstance(net, InplaceReusedNet) else net.cam_layer
    with torch.no_grad():
        a = net.ref_features(x, plain_act)
        a = F.relu(a) if layer == "relu" else a
    ref = ref_scorecam(net, x, TARGETS, a).numpy()
    results = [gs.scorecam(net, x, target=TARGETS, layer=layer, batch_size=b).attributions for b in (1, 5, 64)]
    for r in results:
        assert_rel(r, ref, 1e-5)
        assert_rel(r, results[0], 1e-6)


def test_scorecam_constant_channel_gets_zero_mask():
    """A channel that is constant over the map masks the input with 0 (not NaN)."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    ).eval()
    with torch.no_grad():
        net[0].weight[1] = 0.0  # channel 1: its bias everywhere
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    exp = gs.scorecam(net, x, target=[0, 1], layer="1")
    with torch.no_grad():
        a = net[:2](x)
    assert np.isfinite(exp.attributions).all()
    assert_rel(exp.attributions, ref_scorecam(net, x, [0, 1], a).numpy(), 1e-5)


@pytest.mark.parametrize("method", ["gradcam_plus_plus", "layercam", "eigencam", "scorecam"])
def test_topk_targets(method):
    """k targets per sample give (N, k, h, w), each column the one-class result."""
    net = make(FunctionalNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    exp = gs.explain(net, x, method=method, target=TopK(2), layer="conv4")
    assert exp.attributions.shape == (2, 2, 8, 8) and exp.heatmaps.shape == (2, 2, 16, 16)
    for j in range(2):
        one = gs.explain(net, x, method=method, target=exp.targets[:, j].tolist(), layer="conv4")
        assert_rel(exp.attributions[:, j], one.attributions, 1e-5)


def test_callable_target_gradient_cam(net, x):
    exp = gs.hirescam(net, x, target=lambda out: out[:, 1] - out[:, 0], layer=net.cam_layer)
    a = net.ref_features(x, plain_act).detach().requires_grad_(True)
    out = net.ref_head(a, plain_act)
    (g,) = torch.autograd.grad((out[:, 1] - out[:, 0]).sum(), a)
    assert_rel(exp.attributions, F.relu((g * a).sum(1)).detach().numpy(), 1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "eigencam", "scorecam"])
def test_layer_list_averages_normalised_maps(method):
    net = make(InplaceReusedNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    layers = ["conv1", "bn3"]
    exp = gs.explain(net, x, method=method, target=[0, 1], layer=layers, batch_size=16) if method == "scorecam" else \
        gs.explain(net, x, method=method, target=[0, 1], layer=layers)
    singles = [gs.explain(net, x, method=method, target=[0, 1], layer=lay).attributions for lay in layers]
    ref = np.mean([normalise(gs.render.resize(s, SIZE)) for s in singles], axis=0)
    assert exp.attributions.shape == (2, 16, 16) and exp.layer == "conv1,bn3"
    assert_rel(exp.attributions, ref, 1e-5)
    assert exp.extras["layers"] == layers


@pytest.mark.parametrize("method", ["gradcam", "layercam", "eigencam"])
def test_guided_option_is_guided_backprop_times_the_cam(net, x, method):
    exp = gs.explain(net, x, method=method, target=TARGETS, layer=net.cam_layer, guided=True)
    cam = gs.explain(net, x, method=method, target=TARGETS, layer=net.cam_layer).attributions
    gb = gs.guided_backprop(net, x, target=TARGETS).attributions
    np.testing.assert_allclose(exp.extras["cam"], cam, rtol=1e-6, atol=1e-7)
    assert_rel(exp.attributions, gb * gs.render.resize(cam, SIZE)[:, None], 1e-5)
    if method == "gradcam":
        assert_rel(exp.attributions, gs.guided_gradcam(net, x, target=TARGETS, layer=net.cam_layer).attributions, 1e-6)


# --- Integrated Gradients, input x gradient ---
RULES = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


# every rule on the functional-ReLU net; the in-place / reused one with the default rule (the rules are
# model-independent weights, checked by test_quadrature_nodes)
@pytest.mark.parametrize(("net_cls", "rule"), [(FunctionalNet, r) for r in RULES] + [(InplaceReusedNet, RULES[0])],
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_integrated_gradients_match_reference(x, net_cls, rule):
    from gradsight.methods.integrated_gradients import quadrature

    net = make(net_cls)
    steps = 6
    alphas, weights = quadrature(rule, steps)
    assert abs(weights.sum() - 1) < 1e-12
    base = torch.full_like(x, -0.3)
    ref = ref_ig(net, x, TARGETS, base, alphas, weights)
    for batch_size in (4, 64) if rule == "gausslegendre" else (64,):
        exp = gs.integrated_gradients(net, x, target=TARGETS, steps=steps, rule=rule, baseline=-0.3,
                                      batch_size=batch_size)
        assert_rel(exp.attributions, ref, 1e-5)


def test_quadrature_nodes():
    from gradsight.methods.integrated_gradients import quadrature

    a, w = quadrature("riemann_trapezoid", 5)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    a, w = quadrature("gausslegendre", 3)  # exact for polynomials of degree 5
    assert abs((w * a**5).sum() - 1 / 6) < 1e-14


def test_integrated_gradients_baselines_and_delta(net, x):
    exp = gs.integrated_gradients(net, x, target=TARGETS, steps=8, baseline="uniform", seed=3)
    again = gs.integrated_gradients(net, x, target=TARGETS, steps=8, baseline="uniform", seed=3, batch_size=5)
    assert_rel(again.attributions, exp.attributions, 1e-5)
    from gradsight.backends.torch import TorchBackend
    from gradsight.methods.integrated_gradients import baseline_array

    b = baseline_array(TorchBackend(), net, x, "uniform", 3)
    assert (b.reshape(3, -1).min(1) >= x.numpy().reshape(3, -1).min(1)).all()
    ref = ref_ig(net, x, TARGETS, torch.from_numpy(b), *__import__(
        "gradsight.methods.integrated_gradients", fromlist=["quadrature"]).quadrature("gausslegendre", 8))
    assert_rel(exp.attributions, ref, 1e-5)
    with torch.no_grad():
        idx = torch.arange(3), torch.tensor(TARGETS)
        gap = (net(x)[idx] - net(torch.from_numpy(b))[idx]).numpy()
    np.testing.assert_allclose(exp.extras["delta"], exp.attributions.reshape(3, -1).sum(1) - gap, rtol=1e-4, atol=1e-5)
    # batch_size=5 < 2N: y(x) and y(x') from two forwards instead of one of 2N rows; the same scores and delta
    np.testing.assert_allclose(again.extras["delta"], again.attributions.reshape(3, -1).sum(1) - gap, rtol=1e-4,
                               atol=1e-5)
    assert_rel(again.scores, exp.scores, 1e-6)
    blur = gs.integrated_gradients(net, x, target=TARGETS, steps=4, baseline="blur")
    arr = gs.integrated_gradients(net, x, target=TARGETS, steps=4, baseline=x.numpy() * 0)
    assert_rel(arr.attributions, gs.integrated_gradients(net, x, target=TARGETS, steps=4).attributions, 1e-6)
    assert np.abs(blur.attributions - arr.attributions).max() > 0


def test_input_x_gradient_matches_reference(net, x):
    xr = x.clone().requires_grad_(True)
    out = net.ref_head(net.ref_features(xr, plain_act), plain_act)
    (g,) = torch.autograd.grad(out[torch.arange(3), torch.tensor(TARGETS)].sum(), xr)
    assert_rel(gs.input_x_gradient(net, x, target=TARGETS).attributions, (x * g).numpy(), 1e-5)


# --- SmoothGrad's aggregates and bases ---
def _noisy_copies(x, samples, noise, seed):
    n = len(x)
    xn = x.numpy().reshape(n, -1)
    sigma = (noise * (xn.max(1) - xn.min(1))).astype(np.float32)
    for s in range(samples):
        eps = np.random.default_rng([seed, s]).standard_normal(tuple(x.shape), dtype=np.float32)
        yield x + torch.from_numpy(eps * sigma[:, None, None, None])


def _grad(net, x, targets):
    xr = x.clone().requires_grad_(True)
    out = net.ref_head(net.ref_features(xr, plain_act), plain_act)
    return torch.autograd.grad(out[torch.arange(len(x)), torch.tensor(targets)].sum(), xr)[0]


# each pair on one of the two nets (both nets see both aggregates that differ from today's mean)
@pytest.mark.parametrize(("net_cls", "aggregate", "base"), [
    (InplaceReusedNet, "mean", "input_x_gradient"), (FunctionalNet, "mean_square", "saliency"),
    (InplaceReusedNet, "var", "saliency"), (FunctionalNet, "var", "input_x_gradient"),
    (InplaceReusedNet, "mean_square", "input_x_gradient"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_smoothgrad_aggregates_and_bases(x, net_cls, aggregate, base):
    net = make(net_cls)
    per = np.stack([
        ((xs * _grad(net, xs, TARGETS)) if base == "input_x_gradient" else _grad(net, xs, TARGETS)).numpy()
        for xs in _noisy_copies(x, 5, 0.2, 7)
    ]).astype(np.float64)
    ref = {"mean": per.mean(0), "mean_square": (per**2).mean(0), "var": per.var(0)}[aggregate]  # population var
    for batch_size in (2, 64):
        exp = gs.smoothgrad(net, x, target=TARGETS, samples=5, noise=0.2, seed=7, batch_size=batch_size,
                            base=base, aggregate=aggregate)
        assert_rel(exp.attributions, ref, 1e-5)


def test_smoothgrad_of_integrated_gradients(net, x):
    from gradsight.methods.integrated_gradients import quadrature

    q = quadrature("riemann_middle", 3)
    per = [ref_ig(net, xs, TARGETS, torch.zeros_like(xs), *q) for xs in _noisy_copies(x, 3, 0.1, 5)]
    exp = gs.smoothgrad(net, x, target=TARGETS, samples=3, noise=0.1, seed=5, base="integrated_gradients",
                        base_options={"steps": 3, "rule": "riemann_middle"})
    assert_rel(exp.attributions, np.mean(per, axis=0), 1e-5)
    with pytest.raises(gs.UnknownOptionError, match="base_options"):
        gs.smoothgrad(net, x, samples=2, base_options={"steps": 3})
    with pytest.raises(gs.UnknownOptionError, match="aggregate"):
        gs.smoothgrad(net, x, samples=2, aggregate="median")


@pytest.mark.parametrize("method", ["smoothgrad", "integrated_gradients", "scorecam"])
def test_channels_last_input_kept_and_same_numbers(monkeypatch, method):
    """A channels-last tensor (what a permute of NHWC images gives): new batches keep its
    memory layout, and the numbers are those of the contiguous input."""
    net = make(InplaceReusedNet)
    x = torch.randn(2, 16, 16, 3, generator=torch.Generator().manual_seed(6)).permute(0, 3, 1, 2)
    assert x.is_contiguous(memory_format=torch.channels_last)
    seen = []
    handle = net.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
    opts = {"smoothgrad": {"samples": 3, "seed": 1, "batch_size": 4}, "integrated_gradients": {"steps": 4, "batch_size": 4},
            "scorecam": {"batch_size": 8, "layer": "relu"}}[method]
    try:
        a = gs.explain(net, x, method=method, target=[0, 1], **opts).attributions
    finally:
        handle.remove()
    assert seen and all(seen), seen
    b = gs.explain(net, x.contiguous(), method=method, target=[0, 1], **opts).attributions
    assert_rel(a, b, 1e-5)


def test_groups_and_method_lists():
    from gradsight.methods import GROUPS, method_names

    assert method_names("all") == ["saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam"]
    assert set(method_names("every")) == set(gs.METHODS)
    assert method_names("cams,gradcam,input-x-gradient") == list(GROUPS["cams"]) + ["input_x_gradient"]
    with pytest.raises(gs.UnknownMethodError, match="layercam"):
        method_names("gradcam,layer_cam")


# --- what the gradient pass makes besides the map (methods/_cam.py LayerWeigh) ---
def _dead_for_sample_0():
    """conv "0" (positive weights, no bias) -> ReLU -> mean -> Linear: sample 0 (all -1) leaves every
    ReLU off, so the gradient at "0" is exactly zero for it and not for sample 1 (all +1)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        net[0].weight.abs_()
    x = torch.cat([-torch.ones(1, 3, 8, 8), torch.ones(1, 3, 8, 8)])
    return net.eval(), x


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam"])
def test_zero_gradient_flags_from_the_pass(method, monkeypatch):
    """The zero-gradient warning comes from flags the gradient pass computes (the layer gradient is
    never read on the host: on a GPU, no transfer) and names exactly the dead samples (pairs with k targets)."""
    from gradsight.backends.torch.ops import TorchOps

    def not_on_the_host(*args, **kwargs):
        raise AssertionError("a single-layer gradient CAM read the layer gradient on the host")

    net, x = _dead_for_sample_0()
    monkeypatch.setattr(TorchOps, "view", not_on_the_host)
    with pytest.warns(gs.ZeroGradientWarning, match=r"sample\(s\) \[0\]\."):
        gs.explain(net, x, method=method, target=[0, 0], layer="0")
    with pytest.warns(gs.ZeroGradientWarning, match=r"\(sample, target\) \[\(0, 0\), \(0, 1\)\]\."):
        gs.explain(net, x, method=method, target=TopK(2), layer="0")
    with warnings.catch_warnings():
        warnings.simplefilter("error", gs.ZeroGradientWarning)
        gs.explain(net, x[1:], method=method, target=TopK(2), layer="0")  # the live sample alone: no warning
