"""Models that end in a softmax or log-softmax: logits=True in PyTorch (module or functional),
the same warning in both frameworks, and the CLI's --logits / --probabilities.

References: the same network without its final softmax (same weights), differentiated by hand
with autograd / GradientTape.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import gradsight as gs
from gradsight.cli import main
from gradsight.errors import SaturationWarning
from helpers import assert_rel


class ExamplesMnistNet(nn.Module):
    """pytorch/examples mnist/main.py's Net (random weights): ends in F.log_softmax."""

    def __init__(self, final: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(16 * 12 * 12, 32)
        self.fc2 = nn.Linear(32, 10)
        self.final = final

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1) if self.final else x


def _mnist_net() -> ExamplesMnistNet:
    torch.manual_seed(0)
    return ExamplesMnistNet()


def _digits(n: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).random((n, 1, 28, 28), dtype=np.float32))


def _saliency_ref(net: nn.Module, x: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    xi = x.clone().requires_grad_(True)
    out = net(xi)
    out[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    return xi.grad.numpy()


def test_functional_log_softmax_logits_true_gives_the_logit_gradient() -> None:
    net = _mnist_net().eval()
    x = _digits()
    with pytest.warns(SaturationWarning, match="the model's output comes from a final F.log_softmax"):
        probs = gs.saliency(net, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)  # logits=True: no warning
        exp = gs.saliency(net, x, logits=True)
    net.final = False
    ref = _saliency_ref(net, x, exp.targets)
    net.final = True
    assert_rel(exp.attributions, ref, 1e-5)
    assert_rel(exp.outputs, _logits(net, x), 1e-6)
    assert not np.allclose(probs.attributions, exp.attributions)
    assert not net._forward_hooks and not net._forward_pre_hooks  # nothing left on the model
    assert_rel(gs.predict(net, x, logits=True), _logits(net, x), 1e-6)


def _logits(net: ExamplesMnistNet, x: torch.Tensor) -> np.ndarray:
    net.final = False
    with torch.no_grad():
        out = net.eval()(x).numpy()
    net.final = True
    return out


@pytest.mark.parametrize("final", [nn.Softmax(dim=1), nn.LogSoftmax(dim=1)])
def test_sequential_softmax_module_gradcam_and_guided(final: nn.Module) -> None:
    torch.manual_seed(2)
    body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 5 * 5, 4))
    model = nn.Sequential(body, final).eval()
    x = torch.from_numpy(np.random.default_rng(3).random((2, 1, 14, 14), dtype=np.float32))
    name = type(final).__name__
    with pytest.warns(SaturationWarning, match=f"{name} '1'"):
        gs.gradcam(model, x)
    for method in ("gradcam", "guided_backprop"):
        a = gs.explain(model, x, method=method, logits=True)
        b = gs.explain(body, x, method=method)
        assert a.layer == (None if b.layer is None else f"0.{b.layer}")
        np.testing.assert_array_equal(a.targets, b.targets)
        assert_rel(a.attributions, b.attributions, 1e-6)


def test_logits_true_on_a_model_without_softmax_is_an_error() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with pytest.raises(gs.ModelError, match="does not end in one"):
        gs.saliency(model, torch.rand(1, 1, 6, 6), logits=True)
    assert not model._forward_hooks


def test_keras_and_torch_warn_the_same_way() -> None:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(5)
    km = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                           keras.layers.Dense(3, activation="softmax")])
    with pytest.warns(SaturationWarning) as kw:
        gs.saliency(km, np.random.default_rng(6).random((1, 6, 6, 1), dtype=np.float32))
    with pytest.warns(SaturationWarning) as tw:
        gs.saliency(_mnist_net(), _digits(1))
    k, t = str(kw[0].message), str(tw[0].message)
    assert k.startswith("the model's output comes from its last layer") and t.startswith("the model's output comes from")
    assert k.split(": ", 1)[1] == t.split(": ", 1)[1]  # the same advice, word for word


# --------------------------------------------------------------------------- the CLI


def mnist_factory() -> nn.Module:
    return _mnist_net()


def _digit_png(tmp_path: Path) -> Path:
    digit = np.zeros((28, 28), np.uint8)
    digit[5:23, 10:14] = 255
    path = tmp_path / "digit.png"
    Image.fromarray(digit, mode="L").save(path)
    return path


def test_cli_explains_logits_by_default_and_probabilities_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    png = _digit_png(tmp_path)
    spec = "test_softmax_models:mnist_factory"
    rc = main(["explain", str(png), "--model", spec, "--method", "saliency", "--out", str(tmp_path / "a")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "explaining the pre-softmax scores" in out.err and "--probabilities" in out.err
    assert "SaturationWarning" not in out.err and "Pass logits=True" not in out.err

    rc = main(["explain", str(png), "--model", spec, "--method", "saliency", "--probabilities",
               "--out", str(tmp_path / "b")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "pre-softmax" not in out.err
    pa = np.asarray(Image.open(tmp_path / "a" / "digit_saliency.png"))
    pb = np.asarray(Image.open(tmp_path / "b" / "digit_saliency.png"))
    assert pa.shape == pb.shape and not np.array_equal(pa, pb)

    rc = main(["explain", str(png), "--model", spec, "--logits", "--probabilities", "--out", str(tmp_path / "c")])
    assert rc == 2


def test_cli_logits_on_a_model_without_softmax_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["explain", str(_digit_png(tmp_path)), "--model", "demo", "--logits", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("gradsight: error:") == 1 and "does not end in" in err


def test_layers_prints_no_explanation_warnings(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["layers", "--model", "test_softmax_models:mnist_factory"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err
    assert "(1, 1, 28, 28)" in out.out and "conv2" in out.out
