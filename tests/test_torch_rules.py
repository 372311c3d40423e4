"""Backward rules on PyTorch: the worked example, every rectifier spelling, reuse, in-place."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gradsight as gs
from gradsight.rules import RULES, get_rule

FEATURES = [[1.0, -1.0, 5.0], [2.0, -5.0, -7.0], [-3.0, 2.0, 4.0]]
UPSTREAM = [[-2.0, 3.0, -1.0], [6.0, -3.0, 1.0], [2.0, -1.0, 3.0]]
EXPECTED = {
    "plain": [[-2, 0, -1], [6, 0, 0], [0, -1, 3]],
    "deconvnet": [[0, 3, 0], [6, 0, 1], [2, 0, 3]],
    "guided": [[0, 0, 0], [6, 0, 0], [0, 0, 3]],
}


@pytest.mark.parametrize("rule", list(EXPECTED))
def test_worked_example_rule_data(rule):
    """The rule definitions alone, in numpy."""
    x, g = np.array(FEATURES), np.array(UPSTREAM)
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    out = RULES[rule].backward(g, lambda t: t * (x > 0), relu, relu)
    np.testing.assert_array_equal(out, EXPECTED[rule])


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("rule", list(EXPECTED))
def test_worked_example_through_torch(rule, inplace):
    """The same example through gs.backward_rule on an nn.ReLU module."""
    model = nn.Sequential(nn.Identity(), nn.ReLU(inplace=inplace))
    x = torch.tensor(FEATURES, requires_grad=True)
    with gs.backward_rule(model, rule):
        y = model(x * 1.0)
    (grad,) = torch.autograd.grad(y, x, grad_outputs=torch.tensor(UPSTREAM))
    np.testing.assert_array_equal(grad.numpy(), EXPECTED[rule])


SPELLINGS = {
    "F.relu": lambda t: F.relu(t),
    "F.relu inplace": lambda t: F.relu(t, inplace=True),
    "F.relu positional inplace": lambda t: F.relu(t, True),
    "torch.relu": torch.relu,
    "Tensor.relu": lambda t: t.relu(),
    "Tensor.relu_": lambda t: t.relu_(),
    "torch.relu_": torch.relu_,
    "F.relu_": F.relu_,
    "nn.ReLU": nn.ReLU(),
    "nn.ReLU inplace": nn.ReLU(inplace=True),
}

LEAKY = {
    "F.leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "F.leaky_relu kw": lambda t: F.leaky_relu(t, negative_slope=0.2),
    "F.leaky_relu inplace": lambda t: F.leaky_relu(t, 0.2, inplace=True),
    "F.leaky_relu_": lambda t: F.leaky_relu_(t, 0.2),
    "nn.LeakyReLU": nn.LeakyReLU(0.2),
    "nn.LeakyReLU inplace": nn.LeakyReLU(0.2, inplace=True),
}


class Wrap(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return self.fn(x * self.scale)


def _rule_grad(fn, rule, x, g):
    model = Wrap(fn)
    xr = x.clone().requires_grad_(True)
    with gs.backward_rule(model, rule) as report:
        y = model(xr)
    (grad,) = torch.autograd.grad(y, xr, grad_outputs=g)
    return grad, report


@pytest.mark.parametrize("name", list(SPELLINGS))
@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_every_relu_spelling_gets_the_rule(name, rule):
    x, g = torch.tensor(FEATURES), torch.tensor(UPSTREAM)
    grad, report = _rule_grad(SPELLINGS[name], rule, x, g)
    np.testing.assert_array_equal(grad.numpy(), EXPECTED[rule])
    assert report.count == 1


@pytest.mark.parametrize("name", list(LEAKY))
def test_every_leaky_relu_spelling_gets_the_rule(name):
    x, g = torch.tensor(FEATURES), torch.tensor(UPSTREAM)
    slope = torch.where(x > 0, 1.0, 0.2)
    guided, _ = _rule_grad(LEAKY[name], "guided", x, g)
    np.testing.assert_allclose(guided.numpy(), (g.clamp(min=0) * slope).numpy(), rtol=1e-6)
    deconv, _ = _rule_grad(LEAKY[name], "deconvnet", x, g)
    np.testing.assert_allclose(deconv.numpy(), F.leaky_relu(g, 0.2).numpy(), rtol=1e-6)
    plain, _ = _rule_grad(LEAKY[name], "plain", x, g)
    np.testing.assert_allclose(plain.numpy(), (g * slope).numpy(), rtol=1e-6)


def test_reused_module_gets_the_rule_at_every_call():
    relu = nn.ReLU()

    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = relu
            self.w = nn.Parameter(torch.tensor(-1.0))

        def forward(self, x):
            return self.relu(self.w * self.relu(x) + 1.0)

    model = Reuse()
    with gs.backward_rule(model, "guided") as report:
        model(torch.ones(2))
    assert report.overridden["relu"] == 2


def test_activations_outside_the_model_are_untouched():
    model = Wrap(F.relu)
    x = torch.tensor(FEATURES, requires_grad=True)
    with gs.backward_rule(model, "guided") as report:
        y = F.relu(model(x) - 1.0)  # outside the model's forward: plain
    assert report.count == 1
    (grad,) = torch.autograd.grad(y, x, grad_outputs=torch.tensor(UPSTREAM))
    mask = (torch.tensor(FEATURES) > 1.0).float()
    np.testing.assert_array_equal(grad.numpy(), (torch.tensor(UPSTREAM).clamp(min=0) * mask).numpy())


def test_toy_model_guided_gradient_is_known():
    """relu(x) followed by -x^2: the upstream gradient is -2 relu(x) <= 0, so guided gives 0."""
    model = Wrap(lambda t: -(F.relu(t) ** 2))
    x = torch.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    with gs.backward_rule(model, "guided"):
        y = model(x).sum()
    (grad,) = torch.autograd.grad(y, x)
    assert torch.count_nonzero(grad) == 0
    plain = torch.autograd.grad(model(x).sum(), x)[0]
    np.testing.assert_array_equal(plain.numpy(), [[-2.0, 0.0, -6.0]])


def test_backward_rule_with_user_backward_call():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 4, requires_grad=True)
    with gs.backward_rule(model, "guided"):
        model(x)[:, 1].sum().backward()
    guided = x.grad.clone()
    x.grad = None
    model(x)[:, 1].sum().backward()
    assert not torch.allclose(guided, x.grad), "the rule changed nothing"
    # the model's own parameters got .grad from the user's backward, as the user asked
    assert model[0].weight.grad is not None


def test_rule_that_overrides_nothing_raises():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid())
    with pytest.raises(gs.RuleNotAppliedError, match="overrode no activation"):
        with gs.backward_rule(model, "guided"):
            model(torch.randn(2, 3))
    x = torch.randn(2, 3)
    with pytest.raises(gs.RuleNotAppliedError):
        gs.explain(model, x, "guided_backprop", target=0)


def test_unsupported_activations_are_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.SiLU())
    with pytest.warns(gs.UnsupportedActivationWarning, match=r"gelu x1, silu x1"):
        gs.explain(model, torch.randn(2, 3), "guided_backprop", target=0)


def test_unknown_rule_lists_valid():
    with pytest.raises(gs.UnknownMethodError, match="guided"):
        get_rule("guidded")


@pytest.mark.parametrize("inplace", [False, True])
def test_negative_slope_leaky_relu_keeps_the_input_sign(inplace):
    """With a negative slope sign(f(x)) != sign(x): f'(x) must come from the input."""
    x, g = torch.tensor(FEATURES), torch.tensor(UPSTREAM)
    guided, _ = _rule_grad(lambda t: F.leaky_relu(t, -0.5, inplace=inplace), "guided", x, g)
    np.testing.assert_allclose(guided.numpy(), (g.clamp(min=0) * torch.where(x > 0, 1.0, -0.5)).numpy())


@pytest.mark.parametrize("inplace", [False, True])
def test_method_rule_inside_a_user_rule_block_wins(inplace):
    """A method's own rule inside ``with gs.backward_rule(...)``: the innermost rule wins,
    in-place ReLU included, and the outer block does not complain that it saw nothing."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=inplace), nn.Conv2d(4, 4, 3),
                          nn.ReLU(inplace=inplace), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.randn(2, 3, 8, 8)
    guided = gs.guided_backprop(model, x, target=1).attributions
    deconv = gs.deconvnet(model, x, target=1).attributions
    with gs.backward_rule(model, "deconvnet"):
        inner = gs.guided_backprop(model, x, target=1).attributions
        outer = gs.saliency(model, x, target=1).attributions  # the block's own rule
    np.testing.assert_array_equal(inner, guided)
    np.testing.assert_array_equal(outer, deconv)
    assert not np.allclose(guided, deconv)
