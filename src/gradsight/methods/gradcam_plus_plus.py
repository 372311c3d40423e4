"""Grad-CAM++ (Chattopadhay et al. 2018): pixel-weighted positive gradients."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..targets import Target
from ._cam import gradient_cam
from ._common import MethodResult
from ._tokens import Tokens


def weigh(ops: Any, A: Any, G: Any, ch: int, spatial: tuple[int, ...]) -> Any:
    # a_ij ReLU(g_ij) = ReLU(g_ij) / (2 + S g_ij) wherever g_ij != 0 (the g^2 cancels), and both sides
    # are 0 where g_ij = 0; where 2 + S g_ij = 0 the denominator g^2 (2 + S g) is 0: a_ij = 0, no eps.
    # Four element-wise passes over the layer instead of eight.
    total = ops.sum(A, spatial, keepdims=True)
    w = ops.sum(ops.safe_div(ops.relu(G), 2.0 + total * G), spatial, keepdims=True)
    return ops.relu(ops.sum(w * A, axis=ch))


def gradcam_plus_plus(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: Any = None,
) -> MethodResult:
    """ReLU(sum_k w_k A_k), w_k = sum_ij a_ij ReLU(g_ij), a_ij = g^2 / (2 g^2 + (sum_ab A_ab) g^3).

    g = dy/dA at ``layer``; a_ij is 0 where its denominator is 0 (no eps). One forward and
    one backward to the layer. ``attributions`` (N, h, w) at the layer's resolution,
    unnormalised ((N, k, h, w) for k targets per sample). ``layer=[...]``: each layer's
    map resized to the input, min-max normalised, averaged ((N, H, W)). ``guided=True``:
    guided backprop times the map resized to the input (``extras["cam"]`` the map).
    """
    return gradient_cam(bk, model, x, target, layer=layer, call=call, output=output, guided=guided,
                        name="gradcam_plus_plus", weigh=weigh, tokens=tokens, layer_input=layer_input)
