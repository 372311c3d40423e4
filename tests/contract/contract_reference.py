"""An independent reference for the contract cases: ShapesNet's forward written out by hand.

No gradsight code runs here: the demo network is re-implemented with ``torch.nn.functional``
on its weights (eval-mode BatchNorm, out-of-place ReLUs), each rectifier a small autograd
function that back-propagates by the rule's textbook formula (plain ``g * 1[x > 0]``,
deconvnet ``relu(g)``, guided ``relu(g) * 1[x > 0]``), and each method follows its paper:
Grad-CAM pools the layer gradient with a *mean* over space, SmoothGrad averages the base
gradient over noisy copies. Both backends are compared with these numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class _Rectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        if ctx.rule == "plain":
            return g * (x > 0), None
        if ctx.rule == "deconvnet":
            return g.clamp_min(0), None
        return g.clamp_min(0) * (x > 0), None  # guided


def forward(model: torch.nn.Module, x: torch.Tensor, rule: str = "plain") -> tuple[torch.Tensor, dict[str, Any]]:
    """``(logits, layers)``: layers holds conv3's output, the shared relu's three outputs and relu4's."""
    s = model.state_dict()

    def block(h: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        conv = F.conv2d(h, s[f"conv{i}.weight"], padding=1)
        bn = F.batch_norm(conv, s[f"bn{i}.running_mean"], s[f"bn{i}.running_var"], s[f"bn{i}.weight"],
                          s[f"bn{i}.bias"], training=False, eps=1e-5)
        return conv, _Rectifier.apply(bn, rule)

    layers: dict[str, Any] = {"relu": []}
    h = x
    for i in (1, 2, 3):
        conv, r = block(h, i)
        layers["relu"].append(r)
        if i == 3:
            layers["conv3"] = conv
        h = F.max_pool2d(r, 2)
    _, layers["relu4"] = block(h, 4)
    logits = F.linear(layers["relu4"].mean(dim=(2, 3)), s["classifier.weight"], s["classifier.bias"])
    return logits, layers


def _score(logits: torch.Tensor, targets: list[int]) -> torch.Tensor:
    return logits[torch.arange(len(targets)), torch.tensor(targets)]


def input_gradient(model: torch.nn.Module, x: np.ndarray, targets: list[int], rule: str) -> np.ndarray:
    xt = torch.from_numpy(x).requires_grad_(True)
    logits, _ = forward(model, xt, rule)
    (g,) = torch.autograd.grad(_score(logits, targets).sum(), xt)
    return g.numpy()


def _pick(layers: dict[str, Any], layer: str, call: int) -> torch.Tensor:
    return layers["relu"][call] if layer == "relu" else layers[layer]


def gradcam(model: torch.nn.Module, x: np.ndarray, targets: list[int], layer: str, call: int = -1,
            gate: str | None = None) -> np.ndarray:
    logits, layers = forward(model, torch.from_numpy(x).requires_grad_(True))
    a = _pick(layers, layer, call)
    (g,) = torch.autograd.grad(_score(logits, targets).sum(), a)
    if gate == "guided":
        g = g.clamp_min(0) * (a > 0)
    alpha = g.mean(dim=(2, 3), keepdim=True)  # the paper's global-average pooling of the gradients
    return torch.relu((alpha * a).sum(1)).detach().numpy()


def guided_gradcam(model: torch.nn.Module, x: np.ndarray, targets: list[int], layer: str) -> np.ndarray:
    cam = torch.from_numpy(gradcam(model, x, targets, layer))
    up = F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False).numpy()
    return input_gradient(model, x, targets, "guided") * up


def smoothgrad(model: torch.nn.Module, x: np.ndarray, targets: list[int], samples: int, noise: float,
               seed: int, rule: str) -> np.ndarray:
    n = len(x)
    flat = x.reshape(n, -1)
    sigma = (noise * (flat.max(1) - flat.min(1))).astype(np.float32).reshape(n, 1, 1, 1)
    total = np.zeros_like(x)
    for s in range(samples):
        eps = np.random.default_rng([seed, s]).standard_normal(x.shape, dtype=np.float32)  # channels-first
        total += input_gradient(model, (x + eps * sigma).astype(np.float32), targets, rule)
    return total / samples


RULE_OF = {"saliency": "plain", "deconvnet": "deconvnet", "guided_backprop": "guided"}


def explain(model: torch.nn.Module, x: np.ndarray, targets: list[int], method: str, **options: Any) -> np.ndarray:
    """The reference attributions (channels-first) of one contract case."""
    if method in RULE_OF:
        return input_gradient(model, x, targets, RULE_OF[method])
    if method == "smoothgrad":
        return smoothgrad(model, x, targets, options["samples"], options.get("noise", 0.15), options["seed"],
                          RULE_OF[options.get("base", "saliency")])
    layer = options.get("layer", "relu4")  # the automatic choice: the last spatial output
    if method == "gradcam":
        return gradcam(model, x, targets, layer, options.get("call", -1), options.get("gate"))
    if method == "guided_gradcam":
        return guided_gradcam(model, x, targets, layer)
    raise ValueError(method)
