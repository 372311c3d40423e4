"""Structured model outputs (dict, namedtuple, dataclass, Hugging Face ModelOutput) and one score
per sample (regressors, single-logit binary classifiers), PyTorch; numbers against autograd by hand."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest

import gradsight as gs
from gradsight.errors import OutputChosenWarning, TargetError

torch = pytest.importorskip("torch")
nn = torch.nn

X = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
Pair = namedtuple("Pair", "features logits")


@dataclass
class Out:
    logits: torch.Tensor
    features: torch.Tensor
    loss: torch.Tensor | None = None


class Net(nn.Module):
    def __init__(self, kind: str, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.kind = kind
        self.conv, self.fc = nn.Conv2d(3, 5, 3, padding=1), nn.Linear(5, classes)

    def forward(self, x: torch.Tensor):
        f = torch.relu(self.conv(x))
        logits = self.fc(f.mean((2, 3)))
        if self.kind == "dict":
            return {"features": f, "logits": logits}
        if self.kind == "namedtuple":
            return Pair(f, logits)
        if self.kind == "dataclass":
            return Out(logits, f)
        return logits


def input_grad(model: nn.Module, score) -> np.ndarray:
    x = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(score(model(x)).sum(), [x])
    return g.numpy()


@pytest.mark.parametrize("kind, output", [("dict", "logits"), ("namedtuple", "logits"), ("namedtuple", 1),
                                          ("dataclass", "logits"), ("dataclass", 0)])
def test_structured_output_by_key_or_index(kind, output):
    model = Net(kind).eval()
    exp = gs.saliency(model, X, target=2, output=output)
    logits = model(X)["logits"] if kind == "dict" else model(X).logits
    np.testing.assert_allclose(exp.outputs, logits.detach().numpy(), rtol=1e-6)
    pick = (lambda o: o["logits"][:, 2]) if kind == "dict" else (lambda o: o.logits[:, 2])
    np.testing.assert_allclose(exp.attributions, input_grad(model, pick), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gs.predict(model, X, output=output), logits.detach().numpy(), rtol=1e-6)


def test_missing_key_lists_what_is_there():
    with pytest.raises(TargetError, match=r"'logit'.*'logits': \(3, 4\).*'features'.*Did you mean"):
        gs.saliency(Net("dataclass").eval(), X, output="logit")
    with pytest.raises(TargetError, match="choose one with output=KEY"):
        gs.saliency(Net("namedtuple").eval(), X)


def test_hugging_face_model_output_uses_logits_and_says_so():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(2)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=3,
                                 attn_implementation="eager")
    model = transformers.ViTForImageClassification(cfg).eval()
    with pytest.warns(OutputChosenWarning, match="'logits', 'attentions'.*explaining 'logits'"):
        exp = gs.explain(_WithAttentions(model), X, "saliency", target=1)
    ref = input_grad(model, lambda o: o.logits[:, 1])
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-7)
    with pytest.raises(gs.ModelError, match="not a tensor"):  # a tuple field: named, but not one tensor
        gs.saliency(_WithAttentions(model), X, output="attentions")


class _WithAttentions(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor):
        return self.inner(x, output_attentions=True)


@pytest.mark.parametrize("shape", ["N", "N1"])
def test_one_score_per_sample(shape):
    torch.manual_seed(3)
    base = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    model = (base if shape == "N1" else nn.Sequential(base, nn.Flatten(0))).eval()
    logit = input_grad(model, lambda o: o.reshape(-1))
    score = gs.saliency(model, X)
    np.testing.assert_allclose(score.attributions, logit, rtol=1e-5, atol=1e-7)
    assert score.targets is None
    np.testing.assert_allclose(score.scores, model(X).reshape(-1).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(gs.saliency(model, X, target=1).attributions, logit, rtol=1e-5, atol=1e-7)
    neg = gs.saliency(model, X, target=[0, 1, 0])
    np.testing.assert_allclose(neg.attributions, logit * np.array([-1, 1, -1])[:, None, None, None], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(neg.scores, model(X).reshape(-1).detach().numpy() * [-1, 1, -1], rtol=1e-6)
    with pytest.raises(TargetError, match="out of range"):
        gs.saliency(model, X, target=2)
    sg = gs.smoothgrad(model, X, samples=4, seed=0)  # the fixed target stays "the score" under noise
    assert np.all(np.isfinite(sg.attributions)) and sg.targets is None


DICT_MODULE = '''
import torch
from torch import nn


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 3)

    def forward(self, x):
        f = torch.relu(self.conv(x))
        return {"features": f, "scores": self.head(f.mean((2, 3)))}


def build():
    return DictNet()
'''


def test_cli_output_option(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from gradsight.cli import main

    (tmp_path / "dictnet13.py").write_text(DICT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    img = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(img)
    args = ["explain", str(img), "--model", "dictnet13:build", "--method", "saliency", "--size", "16",
            "--out", str(tmp_path / "out")]
    assert main(args) == 2 and "output=KEY" in capsys.readouterr().err
    assert main(args + ["--output", "scores"]) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "a_saliency.png").is_file()


class Conditioned(nn.Module):
    """A second, unexplained argument (a per-sample bias) and a keyword (a mask over classes)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv, self.fc = nn.Conv2d(3, 5, 3, padding=1), nn.Linear(5, 4)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.fc(torch.relu(self.conv(x)).mean((2, 3))) + bias
        return out if mask is None else out * mask


def test_forward_args_and_kwargs_reach_the_model_and_are_not_explained():
    model = Conditioned().eval()
    bias, mask = torch.randn(3, 4), torch.tensor([1.0, 0.5, 2.0, 1.0])
    x = X.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(model(x, bias, mask=mask)[:, 2].sum(), [x])
    exp = gs.saliency(model, X, target=2, forward_args=(bias,), forward_kwargs={"mask": mask})
    np.testing.assert_allclose(exp.attributions, ref.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(exp.outputs, model(X, bias, mask=mask).detach().numpy(), rtol=1e-6)
    cam = gs.gradcam(model, X, target=1, layer="conv", forward_args=(bias,), forward_kwargs={"mask": mask})
    assert cam.attributions.shape == (3, 8, 8) and np.isfinite(cam.attributions).all()  # smoke: the capture path
    np.testing.assert_allclose(gs.predict(model, X, forward_args=(bias,), forward_kwargs={"mask": mask}),
                               model(X, bias, mask=mask).detach().numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="bias"):
        gs.saliency(model, X)
