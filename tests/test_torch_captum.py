"""gradsight against Captum where Captum is right: models built from nn.ReLU modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradsight as gs
from helpers import assert_rel
from torch_nets import FunctionalNet, ModuleReluNet, make

captum_attr = pytest.importorskip("captum.attr")

TARGETS = [0, 3, 6, 2]


@pytest.fixture(scope="module")
def setup():
    net = make(ModuleReluNet, seed=4)
    x = torch.randn(4, 3, 20, 20, generator=torch.Generator().manual_seed(5))
    return net, x, net.features[5]


def _captum(cls, net, x, *args, **kwargs):
    return cls(net, *args).attribute(x.clone().requires_grad_(True), target=TARGETS, **kwargs).detach().numpy()


def test_saliency(setup):
    net, x, _ = setup
    ref = _captum(captum_attr.Saliency, net, x, abs=False)
    assert_rel(gs.saliency(net, x, target=TARGETS).attributions, ref, 1e-5)


def test_guided_backprop(setup):
    net, x, _ = setup
    ref = _captum(captum_attr.GuidedBackprop, net, x)
    assert_rel(gs.guided_backprop(net, x, target=TARGETS).attributions, ref, 1e-5)


def test_deconvnet(setup):
    net, x, _ = setup
    ref = _captum(captum_attr.Deconvolution, net, x)
    assert_rel(gs.deconvnet(net, x, target=TARGETS).attributions, ref, 1e-5)


def test_layer_gradcam(setup):
    net, x, layer = setup
    ref = captum_attr.LayerGradCam(net, layer).attribute(x, target=TARGETS, relu_attributions=True)
    exp = gs.gradcam(net, x, target=TARGETS, layer=layer)
    assert exp.layer == "features.5"
    assert_rel(exp.attributions, ref.detach().numpy()[:, 0], 1e-5)


def test_guided_gradcam(setup):
    net, x, layer = setup
    ref = captum_attr.GuidedGradCam(net, layer).attribute(x, target=TARGETS, interpolate_mode="bilinear")
    assert_rel(gs.guided_gradcam(net, x, target=TARGETS, layer="features.5").attributions, ref.detach().numpy(), 1e-5)


def test_captum_misses_functional_relu_and_gradsight_does_not():
    """The field's failure this project exists to fix: on F.relu models Captum's guided
    backprop returns the plain gradient; gradsight's does not."""
    net = make(FunctionalNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    targets = [1, 2]
    plain = gs.saliency(net, x, target=targets).attributions
    captum_guided = captum_attr.GuidedBackprop(net).attribute(x.clone().requires_grad_(True), target=targets)
    np.testing.assert_allclose(captum_guided.detach().numpy(), plain, rtol=1e-6, atol=1e-7)
    ours = gs.guided_backprop(net, x, target=targets).attributions
    assert np.abs(ours - plain).max() > 0.05 * np.abs(plain).max()
