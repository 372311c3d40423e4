"""Integrated Gradients and input x gradient against Captum (models of nn.ReLU modules, where
Captum is right), and IG's completeness on the bundled demo model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradsight as gs
from helpers import assert_rel
from torch_nets import ModuleReluNet, make

captum_attr = pytest.importorskip("captum.attr")

TARGETS = [0, 3, 6, 2]


@pytest.fixture(scope="module")
def setup():
    net = make(ModuleReluNet, seed=4)
    x = torch.randn(4, 3, 20, 20, generator=torch.Generator().manual_seed(5))
    return net, x


def _captum_ig(net, x, baseline, steps, method):
    ig = captum_attr.IntegratedGradients(net)
    attr, delta = ig.attribute(x.clone(), baselines=baseline, target=TARGETS, n_steps=steps, method=method,
                               return_convergence_delta=True)
    return attr.detach().numpy(), delta.detach().numpy()


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients_equal_captum(setup, rule):
    net, x = setup
    # a non-constant baseline: at a constant image (riemann_left's first node) pre-activations tie at
    # ReLU kinks, and which side float rounding puts them on depends on the batch's conv algorithm
    base = 0.1 * torch.randn(1, *x.shape[1:], generator=torch.Generator().manual_seed(9))
    ref, ref_delta = _captum_ig(net, x, base, 12, rule)
    exp = gs.integrated_gradients(net, x, target=TARGETS, steps=12, rule=rule, baseline=base, batch_size=24)
    assert_rel(exp.attributions, ref, 1e-5)
    # Captum's delta is sum(attr) - (y(x) - y(x')) too
    np.testing.assert_allclose(exp.extras["delta"], ref_delta, atol=1e-4 * np.abs(ref).sum(axis=(1, 2, 3)).max())


def test_trapezoid_differs_from_captum_by_its_weights(setup):
    """Captum's riemann_trapezoid weights are 1/n (halved at the ends) on nodes spaced 1/(n-1):
    they sum to (n-1)/n. gradsight's are the true trapezoid rule, so ours = Captum's x n/(n-1)."""
    net, x = setup
    ref, _ = _captum_ig(net, x, torch.zeros_like(x), 10, "riemann_trapezoid")
    exp = gs.integrated_gradients(net, x, target=TARGETS, steps=10, rule="riemann_trapezoid")
    assert_rel(exp.attributions, ref * 10 / 9, 1e-5)


def test_input_x_gradient_equals_captum(setup):
    net, x = setup
    ref = captum_attr.InputXGradient(net).attribute(x.clone().requires_grad_(True), target=TARGETS)
    assert_rel(gs.input_x_gradient(net, x, target=TARGETS).attributions, ref.detach().numpy(), 1e-5)


def test_completeness_on_demo_model():
    """|delta| is small next to |y(x) - y(x')| at 64 Gauss-Legendre steps on the demo CNN.

    Measured (torch 2.13 CPU, 2 demo images, zero baseline): max |delta| / |y(x) - y(x')|
    is printed with ``pytest -s``; the bound asserted is 1%.
    """
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import generate, preprocess

    model = load_demo_model()
    x = preprocess(generate(2, seed=2024).images, layout="NCHW")
    exp = gs.integrated_gradients(model, x, steps=64, batch_size=64)
    with torch.no_grad():
        base = model(torch.zeros(1, *x.shape[1:]))[0].numpy()
    gap = exp.scores - base[exp.targets]
    rel = np.abs(exp.extras["delta"]) / np.abs(gap)
    print(f"IG completeness on the demo model, 64 steps: max |delta|/|y(x)-y(x')| = {rel.max():.2e}")
    assert rel.max() < 0.01
