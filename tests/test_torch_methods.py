"""Every method against an independent hand-written reference, on a functional-ReLU
model and on an nn.ReLU(inplace=True) model with a reused ReLU module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradsight as gs
from gradsight.targets import TopK
from helpers import assert_rel
from torch_nets import FunctionalNet, InplaceReusedNet, make, plain_act


# --- reference rules: custom autograd functions written here, three lines each ---
class _GuidedRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return plain_act(x, slope)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * torch.where(x > 0, 1.0, ctx.slope), None


class _DeconvRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.slope = slope
        return plain_act(x, slope)

    @staticmethod
    def backward(ctx, g):
        return plain_act(g, ctx.slope), None


REF_ACTS = {
    "saliency": plain_act,
    "guided_backprop": lambda x, s: _GuidedRef.apply(x, s),
    "deconvnet": lambda x, s: _DeconvRef.apply(x, s),
}
NETS = [FunctionalNet, InplaceReusedNet]
TARGETS = [2, 4, 1]


def ref_forward(model, x, act):
    return model.ref_head(model.ref_features(x, act), act)


def ref_input_grad(model, x, targets, act):
    x = x.clone().requires_grad_(True)
    out = ref_forward(model, x, act)
    return torch.autograd.grad(out[torch.arange(len(x)), targets].sum(), x)[0].numpy()


def ref_gradcam(model, x, targets, gate=None):
    a = model.ref_features(x, plain_act).detach().requires_grad_(True)
    out = model.ref_head(a, plain_act)
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), targets].sum(), a)
    if gate == "guided":
        g = g * (a > 0) * (g > 0)
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    return cam.detach().numpy()


@pytest.fixture(params=NETS, ids=lambda c: c.__name__)
def net(request):
    return make(request.param)


@pytest.fixture
def x():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_reference_forward_matches_model(net, x):
    with torch.no_grad():
        assert_rel(net(x).numpy(), ref_forward(net, x, plain_act).numpy(), 1e-6)


@pytest.mark.parametrize("method", ["saliency", "guided_backprop", "deconvnet"])
def test_gradient_methods_match_reference(net, x, method):
    exp = gs.explain(net, x, method=method, target=TARGETS)
    ref = ref_input_grad(net, x, TARGETS, REF_ACTS[method])
    assert exp.attributions.shape == tuple(x.shape) and exp.attributions.dtype == np.float32
    assert_rel(exp.attributions, ref, 1e-5)
    np.testing.assert_array_equal(exp.targets, TARGETS)
    assert exp.heatmaps.shape == (3, 16, 16) and exp.heatmaps.min() == 0 and exp.heatmaps.max() == 1
    assert_rel(exp.heatmaps, _normalise(np.abs(ref).max(1)), 1e-4)


def test_rules_differ_from_plain_gradient(net, x):
    plain = gs.saliency(net, x, target=TARGETS).attributions
    for method in ("guided_backprop", "deconvnet"):
        other = gs.explain(net, x, method=method, target=TARGETS).attributions
        assert np.abs(other - plain).max() > 1e-3 * np.abs(plain).max(), method


@pytest.mark.parametrize("gate", [None, "guided"])
def test_gradcam_matches_reference(net, x, gate):
    exp = gs.gradcam(net, x, target=TARGETS, layer=net.cam_layer, gate=gate)
    ref = ref_gradcam(net, x, TARGETS, gate)
    assert exp.layer == net.cam_layer
    assert_rel(exp.attributions, ref, 1e-5)
    up = F.interpolate(torch.from_numpy(ref)[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    assert_rel(exp.heatmaps, _normalise(up.numpy()), 1e-4)


def test_guided_gradcam_matches_reference(net, x):
    exp = gs.guided_gradcam(net, x, target=TARGETS, layer=net.cam_layer)
    cam = torch.from_numpy(ref_gradcam(net, x, TARGETS))
    up = F.interpolate(cam[:, None], size=(16, 16), mode="bilinear", align_corners=False)
    ref = ref_input_grad(net, x, TARGETS, REF_ACTS["guided_backprop"]) * up.numpy()
    assert_rel(exp.attributions, ref, 1e-5)


@pytest.mark.parametrize("gate", [None, "guided"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "loop"])
@pytest.mark.parametrize("target", [TARGETS, TopK(2)], ids=["classes", "top2"])
def test_guided_gradcam_is_one_forward_and_equals_its_two_parts(net, x, target, batched, gate, monkeypatch):
    """One forward pass (plain backward to the layer, guided to the input), the same numbers
    as gradcam() and guided_backprop() run separately, bit for bit."""
    from contextlib import nullcontext

    from gradsight.backends.torch import looped_backward

    forwards = []
    handle = net.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        with nullcontext() if batched else looped_backward():
            exp = gs.guided_gradcam(net, x, target=target, layer=net.cam_layer, gate=gate)
    finally:
        handle.remove()
    assert len(forwards) == 1
    cam = gs.gradcam(net, x, target=target, layer=net.cam_layer, gate=gate)
    gb = gs.guided_backprop(net, x, target=target)
    np.testing.assert_array_equal(exp.extras["cam"], cam.attributions)
    np.testing.assert_array_equal(exp.targets, cam.targets)
    np.testing.assert_array_equal(exp.scores, cam.scores)
    k_axis = isinstance(target, TopK)
    up = gs.render.resize(cam.attributions.reshape((-1,) + cam.attributions.shape[-2:]), (16, 16))
    up = up.reshape(cam.attributions.shape[:-2] + (1, 16, 16))
    assert gb.attributions.shape == ((3, 2, 3, 16, 16) if k_axis else (3, 3, 16, 16))
    np.testing.assert_array_equal(exp.attributions, gb.attributions * up)


def _smoothgrad_ref(model, x, targets, samples, noise, seed, act):
    n = len(x)
    xn = x.numpy().reshape(n, -1)
    sigma = noise * (xn.max(1) - xn.min(1))
    total = np.zeros(x.shape)
    for s in range(samples):
        eps = np.random.default_rng([seed, s]).standard_normal(tuple(x.shape), dtype=np.float32)
        noisy = x + torch.from_numpy(eps * sigma[:, None, None, None].astype(np.float32))
        total += ref_input_grad(model, noisy, targets, act)
    return total / samples


@pytest.mark.parametrize("base", ["saliency", "guided_backprop"])
def test_smoothgrad_matches_reference_for_any_batch_size(net, x, base):
    ref = _smoothgrad_ref(net, x, TARGETS, samples=5, noise=0.2, seed=7, act=REF_ACTS[base])
    for batch_size in (1, 2, 6, 64):
        exp = gs.smoothgrad(net, x, target=TARGETS, samples=5, noise=0.2, seed=7, batch_size=batch_size, base=base)
        assert_rel(exp.attributions, ref, 1e-5)


def test_smoothgrad_seed_reproducible_and_noise_matters(net, x):
    a = gs.smoothgrad(net, x, samples=3, seed=1).attributions
    b = gs.smoothgrad(net, x, samples=3, seed=1).attributions
    c = gs.smoothgrad(net, x, samples=3, seed=2).attributions
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0
    zero = gs.smoothgrad(net, x, samples=3, noise=0.0, seed=1).attributions
    assert_rel(zero, gs.saliency(net, x).attributions, 1e-5)


def test_top1_default_and_scores(net, x):
    exp = gs.saliency(net, x)
    with torch.no_grad():
        logits = net(x)
    np.testing.assert_array_equal(exp.targets, logits.argmax(1).numpy())
    assert_rel(exp.scores, logits.max(1).values.numpy(), 1e-6)
    np.testing.assert_array_equal(exp.predictions, exp.targets)


def test_callable_target(net, x):
    exp = gs.saliency(net, x, target=lambda out: out[:, 1] - out[:, 0])
    assert exp.targets is None
    xr = x.clone().requires_grad_(True)
    out = ref_forward(net, xr, plain_act)
    ref = torch.autograd.grad((out[:, 1] - out[:, 0]).sum(), xr)[0]
    assert_rel(exp.attributions, ref.numpy(), 1e-5)


def test_numpy_input_and_int_target(net, x):
    a = gs.saliency(net, x.numpy(), target=3).attributions
    b = gs.saliency(net, x, target=[3, 3, 3]).attributions
    np.testing.assert_array_equal(a, b)


def test_gradcam_auto_layer_survives_inplace_op_after_it():
    """FunctionalNet's last spatial module is conv4, whose output `.relu_()` then changes
    in place: the auto capture must still use conv4's own output."""
    net = make(FunctionalNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    exp = gs.gradcam(net, x, target=[0, 1])
    assert exp.layer == "conv4"
    assert_rel(exp.attributions, ref_gradcam(net, x, [0, 1]), 1e-5)


def test_gradcam_auto_layer_is_last_spatial_module():
    net = make(InplaceReusedNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    exp = gs.gradcam(net, x, target=[0, 1])
    assert exp.layer == "leaky"
    a = F.leaky_relu(F.relu(net.ref_features(x, plain_act)) - 0.05, 0.1).detach().requires_grad_(True)
    out = net.fc(a.mean((2, 3)))
    (g,) = torch.autograd.grad(out[torch.arange(2), torch.tensor([0, 1])].sum(), a)
    ref = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    assert_rel(exp.attributions, ref.detach().numpy(), 1e-5)


def test_gradcam_reused_module_call_index():
    net = make(InplaceReusedNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    first = gs.gradcam(net, x, target=[0, 1], layer="relu", call=0)
    assert first.attributions.shape == (2, 16, 16)  # the first call is before the pooling
    a = F.relu(net.bn1(net.conv1(x))).detach().requires_grad_(True)
    y = net.pool(F.relu(net.bn2(net.conv2(a))))
    out = net.ref_head(net.bn3(net.conv3(y)), plain_act)
    (g,) = torch.autograd.grad(out[torch.arange(2), torch.tensor([0, 1])].sum(), a)
    ref = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    assert_rel(first.attributions, ref.detach().numpy(), 1e-5)
    last = gs.gradcam(net, x, target=[0, 1], layer="relu")
    assert last.attributions.shape == (2, 8, 8)


def test_gradcam_under_no_grad_and_inference_mode(net, x):
    ref = gs.gradcam(net, x, target=TARGETS, layer=net.cam_layer).attributions
    with torch.no_grad():
        a = gs.gradcam(net, x, target=TARGETS, layer=net.cam_layer).attributions
    with torch.inference_mode():
        b = gs.gradcam(net, x, target=TARGETS, layer=net.cam_layer).attributions
    np.testing.assert_array_equal(a, ref)
    np.testing.assert_array_equal(b, ref)


def test_frozen_parameters_still_explained(net, x):
    ref = gs.gradcam(net, x, target=TARGETS, layer=net.cam_layer).attributions
    for p in net.parameters():
        p.requires_grad_(False)
    np.testing.assert_array_equal(gs.gradcam(net, x, target=TARGETS, layer=net.cam_layer).attributions, ref)
    assert not any(p.requires_grad for p in net.parameters())


def test_input_is_never_modified(net, x):
    before = x.clone()
    for method in gs.METHODS:
        gs.explain(net, x, method=method, **({"samples": 2} if method == "smoothgrad" else {}))
        assert torch.equal(x, before) and not x.requires_grad and x.grad is None


def test_one_function_per_method_equals_explain(net, x):
    for name in gs.METHODS:
        opts = {"samples": 2, "seed": 0} if name == "smoothgrad" else {}
        a = getattr(gs, name)(net, x, target=1, **opts).attributions
        b = gs.explain(net, x, method=name, target=1, **opts).attributions
        np.testing.assert_array_equal(a, b)


def _normalise(m):
    m = m.reshape(len(m), -1)
    lo, hi = m.min(1, keepdims=True), m.max(1, keepdims=True)
    return ((m - lo) / (hi - lo)).reshape(len(m), 16, 16)
