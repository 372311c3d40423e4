"""One function per later method, with its real parameters: the CAM family, Integrated
Gradients and input x gradient (``gs.scorecam(model, x, layer=..., batch_size=...)``).

Each calls :func:`gradsight.api.explain`; they live here, one layer above :mod:`gradsight.api`,
so that neither module grows past the size a reader takes in at once. ``gradsight``
exports them with the others.
"""

from __future__ import annotations

from typing import Any

from ._api_docs import doc as _api_doc
from .api import explain
from .explanation import Explanation
from .methods._tokens import Tokens

__all__ = [
    "gradcam_plus_plus",
    "xgradcam",
    "layercam",
    "hirescam",
    "eigencam",
    "scorecam",
    "integrated_gradients",
    "input_x_gradient",
]

_CAM = """layer : str, layer object, a list of them, or None
        The layer whose output is weighed (PyTorch: dotted name from
        ``named_modules()``; Keras: name or ``outer/inner`` path). None: the last
        convolution stage's output. A list: each layer's map resized to the input
        (bilinear), min-max normalised per sample, then averaged; ``attributions`` are
        then (N, H, W) and ``extras["maps"]`` holds each layer's map.
    call : int, default -1
        Which call of a layer that runs several times per forward pass.
    guided : bool, default False
        Guided backprop times the map resized to the input (as guided Grad-CAM does with
        Grad-CAM); ``attributions`` are then input-shaped and ``extras["cam"]`` is the map.
    tokens : gradsight.Tokens, optional
        How a transformer layer's tokens (N, T, C) or a channels-last grid (N, H, W, C)
        map to the image grid; found from the model when not given (see ``gs.gradcam``).
    layer_input : bool, default False
        Weigh the layer's (first) input instead of its output (every layer of a list)."""

_CAM_RESULT = """``attributions`` (N, h, w) at the layer's resolution, unnormalised ((N, k, h, w)
    for k targets per sample); ``heatmaps`` (N, H, W) resized to the input, in [0, 1]."""


def _doc(fn: Any) -> Any:
    fn.__doc__ = fn.__doc__.replace("{cam}", _CAM).replace("{cam_result}", _CAM_RESULT)
    return _api_doc(fn)


def _cam(
    name: str, model: Any, x: Any, target: Any, layer: Any, call: int, guided: bool, output: Any, eval_mode: bool,
    logits: bool, options: dict[str, Any], tokens: Tokens | None = None, layer_input: bool = False,
) -> Explanation:
    if tokens is not None:
        options = {**options, "tokens": tokens}
    if layer_input:
        options = {**options, "layer_input": True}
    return explain(
        model, x, name, target, layer, output=output, eval_mode=eval_mode, logits=logits, call=call, guided=guided,
        **options,
    )


@_doc
def gradcam_plus_plus(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Grad-CAM++ (Chattopadhay et al. 2018): ReLU(sum_k w_k A_k), w_k = sum_ij a_ij ReLU(g_ij).

    a_ij = g^2 / (2 g^2 + (sum_ab A_ab) g^3), 0 where the denominator is 0 (no eps); g the
    gradient of the score at the layer. One forward and one backward to the layer.
    {cam_result}

    Parameters
    ----------
    {common}
    {cam}
    {session}
    """
    return _cam(
        "gradcam_plus_plus", model, x, target, layer, call, guided, output, eval_mode, logits, options, tokens, layer_input
    )


@_doc
def xgradcam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """XGrad-CAM (Fu et al. 2020): w_k = sum_ij (A_ij / (sum_ab A_ab + eps)) g_ij; ReLU(sum_k w_k A_k).

    {cam_result}

    Parameters
    ----------
    {common}
    {cam}
    {session}
    """
    return _cam(
        "xgradcam", model, x, target, layer, call, guided, output, eval_mode, logits, options, tokens, layer_input
    )


@_doc
def layercam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Layer-CAM (Jiang et al. 2021): ReLU(sum_k ReLU(g_k) * A_k), element-wise.

    {cam_result}

    Parameters
    ----------
    {common}
    {cam}
    {session}
    """
    return _cam(
        "layercam", model, x, target, layer, call, guided, output, eval_mode, logits, options, tokens, layer_input
    )


@_doc
def hirescam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """HiResCAM (Draelos & Carin 2020): ReLU(sum_k g_k * A_k), element-wise, no pooling.

    {cam_result}

    Parameters
    ----------
    {common}
    {cam}
    {session}
    """
    return _cam(
        "hirescam", model, x, target, layer, call, guided, output, eval_mode, logits, options, tokens, layer_input
    )


@_doc
def eigencam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Eigen-CAM (Muhammad & Yeasin 2020): the layer's first principal component, ReLU'd.

    The centred activations (h*w x C) projected on their first right singular vector, the
    sign chosen so the map correlates positively with sum_k A_k. No gradient, one forward
    pass: the target does not change the map (``extras["note"]`` says so; ``targets`` and
    ``scores`` report it). {cam_result}

    Parameters
    ----------
    {common}
    {cam}
    {session}
    """
    return _cam(
        "eigencam", model, x, target, layer, call, guided, output, eval_mode, logits, options, tokens, layer_input
    )


@_doc
def scorecam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    batch_size: int = 32,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Score-CAM (Wang et al. 2020): ReLU(sum_k w_k A_k), w = softmax_k(score of model(x * M_k)).

    M_k is channel k upsampled to the input (bilinear, ``align_corners=False``) and min-max
    normalised, 0 for a constant channel: C x N forward passes, no gradient.
    {cam_result}

    Parameters
    ----------
    {common}
    {cam}
    batch_size : int, default 32
        Rows per forward pass (peak memory flat in the channel count; results do not
        depend on it).
    {session}
    """
    return _cam(
        "scorecam", model, x, target, layer, call, guided, output, eval_mode, logits,
        dict(options, batch_size=batch_size), tokens, layer_input,
    )


@_doc
def integrated_gradients(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    steps: int = 50,
    rule: str = "gausslegendre",
    baseline: Any = 0.0,
    batch_size: int = 32,
    seed: int | None = None,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Integrated Gradients (Sundararajan et al. 2017): (x - x') * integral_0^1 grad y(x' + a (x - x')) da.

    ``attributions`` (N, *input) signed ((N, k, *input) for k targets);
    ``extras["delta"]`` (N,) the completeness error: sum of attributions - (y(x) - y(x')).

    Parameters
    ----------
    {common}
    steps : int, default 50
        Quadrature nodes along the path.
    rule : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"}
        The quadrature; ``riemann_trapezoid`` is the true trapezoid rule (Captum's is
        ours times (steps - 1) / steps).
    baseline : number, array, "blur" or "uniform", default 0
        x': a number, an array broadcastable to x (model layout), x Gaussian-blurred
        (sigma 0.1 x max(H, W)), or uniform noise in each sample's value range.
    batch_size : int, default 32
        Rows per backward pass (memory flat in ``steps``).
    seed : int, optional
        Seed of ``baseline="uniform"``.
    {session}
    """
    return explain(
        model, x, "integrated_gradients", target, output=output, eval_mode=eval_mode, logits=logits, steps=steps,
        rule=rule, baseline=baseline, batch_size=batch_size, seed=seed, **options,
    )


@_doc
def input_x_gradient(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Input x gradient (Shrikumar et al. 2016): x * d score / d input.

    ``attributions`` (N, *input) signed, unnormalised; ``heatmaps`` (N, H, W) in [0, 1].

    Parameters
    ----------
    {common}
    {session}
    """
    return explain(model, x, "input_x_gradient", target, output=output, eval_mode=eval_mode, logits=logits, **options)
