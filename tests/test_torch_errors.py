"""Bad input gets typed errors that say what to do."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn

import gradsight as gs
from torch_nets import InplaceReusedNet, ModuleReluNet, make


@pytest.fixture
def net():
    return make(InplaceReusedNet)


@pytest.fixture
def x():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_unknown_layer_lists_close_names(net, x):
    with pytest.raises(gs.LayerNotFoundError, match=r"no layer named 'conv'\. Did you mean: 'conv3', 'conv2', 'conv1'"):
        gs.gradcam(net, x, layer="conv")
    with pytest.raises(gs.LayerNotFoundError, match="Did you mean: 'bn3'"):
        gs.gradcam(net, x, layer="bn_3")
    assert isinstance(gs.LayerNotFoundError("m"), KeyError) and str(gs.LayerNotFoundError("m")) == "m"


def test_foreign_module_object(net, x):
    with pytest.raises(gs.LayerNotFoundError, match="not a module of this model"):
        gs.gradcam(net, x, layer=nn.Conv2d(3, 3, 1))


def test_layer_never_called(x):
    net = make(InplaceReusedNet)
    net.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(gs.LayerNotCalledError, match="never called"):
        gs.gradcam(net, x, layer="unused")


def test_call_index_out_of_range(net, x):
    with pytest.raises(gs.LayerNotCalledError, match=r"called 3 time\(s\).*call=5"):
        gs.gradcam(net, x, layer="relu", call=5)


def test_call_index_out_of_range_with_auto_layer(net, x):
    with pytest.raises(gs.LayerNotCalledError, match=r"'leaky' was called 1 time\(s\).*call=5"):
        gs.gradcam(net, x, call=5)


def test_gradcam_layer_must_be_spatial(net, x):
    with pytest.raises(gs.ModelError, match=r"4-D output .*'fc' gives \(2, 5\)"):
        gs.gradcam(net, x, layer="fc")


def test_no_spatial_layer_for_auto():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.ReLU(), nn.Linear(8, 3))  # images, no spatial layer
    with pytest.raises(gs.LayerNotCalledError, match="4-D"):
        gs.gradcam(mlp, torch.randn(2, 3, 4, 4))
    with pytest.raises(gs.InputError, match="no spatial axes"):  # a table: said before any pass
        gs.gradcam(mlp[1:], torch.randn(2, 48))


@pytest.mark.parametrize(
    "target, message",
    [
        (5, r"class 5 is out of range: the model has 5 outputs \(valid classes 0..4\)"),
        (-1, "out of range"),
        ([0, 1, 2], "3 classes but the batch has 2 samples"),
        ([[0, 1]], "sequence of ints"),
        (1.5, "sequence of ints"),
        ("cat", "unknown target 'cat'"),
    ],
)
def test_bad_targets(net, x, target, message):
    with pytest.raises(gs.TargetError, match=message):
        gs.saliency(net, x, target=target)


def test_callable_target_wrong_shape(net, x):
    with pytest.raises(gs.TargetError, match=r"shape \(2,\); it returned shape \(2, 5\)"):
        gs.saliency(net, x, target=lambda out: out)


def test_unknown_method_and_option(net, x):
    with pytest.raises(gs.UnknownMethodError, match="Did you mean: 'gradcam'"):
        gs.explain(net, x, method="grad_cam")
    with pytest.raises(gs.UnknownOptionError, match=r"no option 'sample'.*Did you mean: 'samples'"):
        gs.explain(net, x, method="smoothgrad", sample=3)
    with pytest.raises(gs.UnknownOptionError, match="no option 'layer'"):
        gs.saliency(net, x, layer="conv1")
    with pytest.raises(gs.UnknownOptionError, match="gate"):
        gs.gradcam(net, x, gate="positive")
    with pytest.raises(gs.UnknownOptionError, match="base"):
        gs.smoothgrad(net, x, base="gradcam", samples=1)


def test_input_layout_rank_dtype(net, x):
    with pytest.raises(gs.InputError, match=re.escape("x.permute(0, 3, 1, 2)")):
        gs.saliency(net, x.permute(0, 2, 3, 1))
    with pytest.raises(gs.InputError, match=re.escape("x[None]")):
        gs.saliency(net, x[0])
    with pytest.raises(gs.InputError, match="floating-point"):
        gs.saliency(net, (x * 100).to(torch.uint8))
    with pytest.raises(gs.InputError, match="torch.Tensor or a numpy array"):
        gs.saliency(net, [[1.0]])


class NotDifferentiable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.round(x.detach()))


def test_not_differentiable():
    with pytest.raises(gs.NotDifferentiableError, match="does not depend"):
        gs.saliency(NotDifferentiable(), torch.randn(2, 4))


def test_zero_gradient_warns_about_softmax():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    with torch.no_grad():
        model[0].weight.mul_(1000)
    x = torch.randn(2, 4) * 10
    with pytest.warns(gs.ZeroGradientWarning, match="softmax probabilities"):
        gs.saliency(model, x)


def test_multi_output_model_needs_output():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            y = self.fc(x)
            return {"logits": y, "aux": y[:, :2]}

    model = Two()
    x = torch.randn(2, 4)
    with pytest.raises(gs.TargetError, match=r"several outputs \('logits': \(2, 3\), 'aux': \(2, 2\)\).*output=KEY"):
        gs.saliency(model, x)
    with pytest.raises(gs.TargetError, match="Did you mean: 'logits'"):
        gs.saliency(model, x, output="logit")
    exp = gs.saliency(model, x, output="aux", target=1)
    ref = torch.autograd.grad(model(x.requires_grad_())["aux"][:, 1].sum(), x)[0]
    np.testing.assert_allclose(exp.attributions, ref.numpy(), rtol=1e-6)


def test_not_a_model():
    with pytest.raises(gs.ModelError, match="torch.nn.Module or a keras.Model"):
        gs.saliency(lambda t: t, np.zeros((1, 3)))


def test_errors_share_a_base_class():
    for cls in (gs.TargetError, gs.InputError, gs.LayerNotFoundError, gs.UnknownMethodError, gs.RuleNotAppliedError):
        assert issubclass(cls, gs.GradsightError)


def test_module_relu_net_layers_listing():
    from gradsight.backends import backend_for

    net = make(ModuleReluNet)
    rows = backend_for(net).layers(net, torch.zeros(1, 3, 8, 8))
    assert [r[0] for r in rows][:3] == ["features.0", "features.1", "features.2"]
    assert rows[-1][2] == (1, 7)


def test_warnings_point_at_the_callers_line():
    import warnings as w

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    with torch.no_grad():
        model[0].weight.mul_(1000)
    for call in (lambda: gs.saliency(model, torch.randn(2, 4) * 10), lambda: gs.explain(model, torch.randn(2, 4) * 10, "smoothgrad", samples=2)):
        with w.catch_warnings(record=True) as caught:
            w.simplefilter("always")
            call()
        assert caught and all(c.filename == __file__ for c in caught), [c.filename for c in caught]
