"""The user's model is exactly as before after explain(): success and every failure kind,
for every method (a generated matrix comparing a full fingerprint).

Every cell of the matrix reaches the model's forward pass (checked), so each one tests
restoring a model that gradsight changed; errors raised before the model runs (a bad
option, a bad input, an unknown layer name) are checked once each, separately."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gradsight as gs


class Boom(nn.Module):
    """Raises mid-forward when armed (a module failing inside the user's model); counts its calls."""

    calls = 0  # on the class: an instance attribute would show in the fingerprint

    def __init__(self) -> None:
        super().__init__()
        self.armed: type[BaseException] | None = None

    def forward(self, x):
        Boom.calls += 1
        if self.armed is not None:
            raise self.armed("boom")
        return x


class StatefulNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.boom = Boom()
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)
        self.fc.bias.requires_grad_(False)  # a frozen parameter must stay frozen

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = self.boom(self.drop(x))
        x = F.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def fingerprint(model: nn.Module) -> dict:
    fp: dict = {"modules": [], "params": [], "buffers": []}
    for name, m in model.named_modules():
        hooks = tuple(
            (attr, tuple(getattr(m, attr).keys()))
            for attr in sorted(vars(m))
            if attr.endswith("hooks") or attr.endswith("hooks_with_kwargs") or "hooks" in attr
            if isinstance(getattr(m, attr), dict)
        )
        fp["modules"].append((name, id(m), type(m).__name__, m.training, hooks, tuple(sorted(vars(m)))))
    for name, p in model.named_parameters():
        fp["params"].append((name, id(p), p.requires_grad, p.grad is None, p.dtype, _digest(p)))
    for name, b in model.named_buffers():
        fp["buffers"].append((name, id(b), _digest(b)))
    fp["global"] = (
        torch.is_grad_enabled(),
        torch._C._len_torch_function_stack(),
        len(torch.nn.modules.module._global_forward_hooks),
        len(torch.nn.modules.module._global_forward_pre_hooks),
    )
    return fp


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


FAILURES = ["none", "bad_target", "target_length", "layer_not_called", "raises", "keyboard_interrupt"]
CELLS = [
    (method, failure)
    for method in gs.METHODS
    for failure in FAILURES
    if failure != "layer_not_called" or gs.METHODS[method].uses_layer  # a layer option exists
]
BEFORE_FORWARD = ["bad_layer", "bad_option", "bad_input"]


def _run(model: StatefulNet, method: str, failure: str) -> None:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    kwargs: dict = {"target": [1, 2]}
    if method == "smoothgrad":
        kwargs.update(samples=2, batch_size=2)
    if failure == "bad_target":
        kwargs["target"] = 9
    elif failure == "target_length":
        kwargs["target"] = [0, 1, 2]
    elif failure == "layer_not_called":
        kwargs.update(layer="conv2", call=5)  # found, but called once: known only after the forward
    elif failure == "bad_layer":
        kwargs["layer"] = "conv3"
    elif failure == "bad_option":
        kwargs["samplez"] = 3
    elif failure == "raises":
        model.boom.armed = RuntimeError
    elif failure == "keyboard_interrupt":
        model.boom.armed = KeyboardInterrupt
    elif failure == "bad_input":
        x = x.permute(0, 2, 3, 1)[:, :, :, :3]
    try:
        gs.explain(model, x, method=method, **kwargs)
    finally:
        model.boom.armed = None


def _prepared_model() -> StatefulNet:
    torch.manual_seed(0)
    model = StatefulNet()
    model.train()  # the user left it in training mode: must come back in training mode
    model.drop.eval()  # a mixed state must come back mixed
    model.conv.register_forward_hook(lambda *a: None)  # the user's own hook stays, alone
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
    return model


@pytest.mark.parametrize("method, failure", CELLS)
def test_model_unchanged(method, failure):
    model = _prepared_model()
    before = fingerprint(model)
    expected = {
        "none": None,
        "bad_target": gs.TargetError,
        "target_length": gs.TargetError,
        "layer_not_called": gs.LayerNotCalledError,
        "raises": RuntimeError,
        "keyboard_interrupt": KeyboardInterrupt,
    }[failure]
    calls = Boom.calls
    if expected is None:
        _run(model, method, failure)
    else:
        with pytest.raises(expected):
            _run(model, method, failure)
    assert Boom.calls > calls, "the cell never reached the model's forward pass"
    assert fingerprint(model) == before


@pytest.mark.parametrize("failure", BEFORE_FORWARD)
def test_errors_before_the_forward_pass_touch_nothing(failure):
    model = _prepared_model()
    before = fingerprint(model)
    expected = {"bad_layer": gs.LayerNotFoundError, "bad_option": gs.UnknownOptionError, "bad_input": gs.InputError}
    calls = Boom.calls
    with pytest.raises(expected[failure]):
        _run(model, "gradcam" if failure == "bad_layer" else "smoothgrad", failure)
    assert Boom.calls == calls
    assert fingerprint(model) == before


def test_eval_mode_false_keeps_modes_and_restores_running_stats():
    torch.manual_seed(0)
    model = StatefulNet().train()
    before = fingerprint(model)
    x = torch.randn(2, 3, 8, 8)
    gs.explain(model, x, "saliency", target=0, eval_mode=False)
    assert fingerprint(model) == before


def test_explanation_runs_in_eval_mode():
    """Dropout would make two runs differ in train mode; eval mode is used by default."""
    torch.manual_seed(0)
    model = StatefulNet().train()
    x = torch.randn(2, 3, 8, 8)
    a = gs.saliency(model, x, target=0).attributions
    b = gs.saliency(model, x, target=0).attributions
    assert (a == b).all()
    assert model.training and model.bn.training
