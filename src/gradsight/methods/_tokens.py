"""Token layers for CAM methods: a layer output that is not (N, C, H, W) made into a grid.

Every CAM method calls :func:`to_grid` on the captured activation and its gradient before
its maths, so vision transformers work with no user code:

- (N, T, C) token sequences (ViT, DeiT, BEiT; Hugging Face Swin stages): the prefix
  tokens (class, distillation, register tokens) are dropped and the T - prefix patch
  tokens laid out as an (h, w) grid, channels last;
- (N, H, W, C) channels-last grids in a channels-first framework (torchvision's Swin):
  with ``Tokens(layout="NHWC")``, or found by the backend
  (:meth:`~gradsight.backends.base.Backend.channels_last_output`: in PyTorch a layer whose
  LayerNorm / Linear sizes match the last axis, or a torchvision Swin model).

Only for image inputs (4-D ``x``) unless ``tokens=`` is given: a 3-D layer output of a
1-D signal model (and a 5-D one of a volume model) is a feature map, not tokens, and is
passed through as it is. The grid is found from the model where it says it (duck typing, no framework import):
a patch size (timm ``patch_embed.patch_size``, Hugging Face ``config.patch_size``,
torchvision ``patch_size``, or a ``patch_size`` attribute of a Keras model) and the
input's size give (h, w) = (H // p, W // p), and the prefix is what is left, T - h * w;
a layer with fewer tokens than that (a later, merged Swin stage): timm's
``num_prefix_tokens`` with a square grid; a model that says nothing: the smallest
prefix (0..8) for which T - prefix is a square. ``Tokens(...)``
overrides; a mismatch is a :class:`~gradsight.errors.TokenGridError` showing the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import ModelError, TokenGridError, ZeroGradientWarning, warn
from ._common import spatial_size
from ._layout import cam_input, check_layer_rank

__all__ = ["Tokens", "to_grid", "token_grid"]

LAYOUTS = (None, "NTC", "NHWC", "NCHW")
MAX_PREFIX = 8  # class + distillation + a few register tokens


@dataclass(frozen=True)
class Tokens:
    """How a token layer's output maps to an image grid (every field optional).

    Parameters
    ----------
    prefix:
        Tokens before the patch tokens (1 for a class token, 2 for DeiT's class and
        distillation tokens, 1 + registers ...).
    grid:
        (h, w) of the patch tokens, row-major.
    layout:
        ``"NTC"`` (N, tokens, channels), ``"NHWC"`` (a channels-last grid), ``"NCHW"``;
        None: NTC for 3-D outputs, the framework's own layout for 4-D ones.

    Example
    -------
    >>> gs.gradcam(vit, x, layer="blocks.11.norm1", tokens=gs.Tokens(prefix=1, grid=(14, 14)))
    """

    prefix: int | None = None
    grid: tuple[int, int] | None = None
    layout: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise TokenGridError(f"Tokens(layout={self.layout!r}) is not valid; use one of {list(LAYOUTS)}.")
        if self.prefix is not None and (not isinstance(self.prefix, int) or self.prefix < 0):
            raise TokenGridError(f"Tokens(prefix={self.prefix!r}) must be an int >= 0.")
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise TokenGridError(f"Tokens(grid={self.grid!r}) must be (h, w) with h, w >= 1.")


def _pair(v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = (int(t) for t in v)
    except (TypeError, ValueError):
        return None
    return a, b


def patch_size(model: Any) -> tuple[int, int] | None:
    """The model's patch size where it says one (timm, Hugging Face, torchvision, an attribute)."""
    for owner, attr in (
        (getattr(model, "patch_embed", None), "patch_size"),  # timm
        (getattr(model, "config", None), "patch_size"),  # Hugging Face
        (model, "patch_size"),  # torchvision VisionTransformer, or set on a Keras model
    ):
        p = _pair(getattr(owner, attr, None)) if owner is not None else None
        if p is not None and min(p) > 0:
            return p
    return None


def _square_prefix(t: int) -> int | None:
    for prefix in range(0, min(MAX_PREFIX, t - 1) + 1):
        side = math.isqrt(t - prefix)
        if side > 1 and side * side == t - prefix:
            return prefix
    return None


def token_grid(model: Any, size: tuple[int, int] | None, t: int, tokens: Tokens | None = None) -> tuple[int, tuple[int, int]]:
    """``(prefix, (h, w))`` for a layer of ``t`` tokens of ``model`` on inputs of ``size`` (H, W)."""
    tokens = tokens or Tokens()
    if tokens.grid is not None:
        h, w = tokens.grid
        prefix = t - h * w if tokens.prefix is None else tokens.prefix
        if prefix < 0 or prefix + h * w != t:
            raise TokenGridError(
                f"the layer has {t} tokens but Tokens(prefix={tokens.prefix}, grid={tokens.grid}) describes "
                f"{prefix if prefix >= 0 else 0} + {h} x {w} = {max(prefix, 0) + h * w}; fix the grid or the prefix."
            )
        return prefix, (h, w)
    p = patch_size(model)
    if p is not None and size is not None:
        h, w = size[0] // p[0], size[1] // p[1]
        prefix = t - h * w
        if prefix >= 0 and (tokens.prefix is None or tokens.prefix == prefix):
            return prefix, (h, w)
    hinted = getattr(model, "num_prefix_tokens", None)  # timm
    if tokens.prefix is None and isinstance(hinted, int) and 0 <= hinted < t:
        side = math.isqrt(t - hinted)
        if side > 1 and side * side == t - hinted:
            return hinted, (side, side)
    if tokens.prefix is not None:
        side = math.isqrt(max(t - tokens.prefix, 0))
        if side * side != t - tokens.prefix or side < 1:
            raise TokenGridError(
                f"the layer has {t} tokens; with Tokens(prefix={tokens.prefix}) the {t - tokens.prefix} patch tokens "
                "are not a square grid: pass grid=(h, w) as well."
            )
        return tokens.prefix, (side, side)
    found = _square_prefix(t)
    if found is None:
        raise TokenGridError(
            f"the layer has {t} tokens and no prefix of 0..{MAX_PREFIX} leaves a square grid of patch tokens, "
            "and the model says no patch size: pass tokens=gs.Tokens(prefix=..., grid=(h, w))."
        )
    side = math.isqrt(t - found)
    return found, (side, side)


def _channels_last_grid(bk: Backend, model: Any, layer: str | None, shape: tuple[int, ...],
                        tokens: Tokens | None) -> bool:
    if tokens is not None and tokens.layout is not None:
        return tokens.layout == "NHWC"
    # torchvision's SwinTransformer keeps its stages (N, H, W, C): the backend tells (Keras is NHWC natively).
    return bk.channels_last_output(model, layer, shape)


def to_grid(
    bk: Backend, model: Any, x: Any, activation: Any, grad: Any, layer: str | None, tokens: Tokens | None = None
) -> tuple[Any, Any, int]:
    """``(activation, gradient, channel axis)`` with the activation as a 4-D spatial grid.

    ``activation`` (N, C, H, W) / (N, H, W, C) is kept, (N, T, C) tokens become
    (N, h, w, C) without their prefix tokens; ``grad`` likewise, with its k axis
    ((N, k, ...), k targets per sample) kept after the batch axis (None for methods
    without a gradient: None comes back). The channel axis is the activation's (0..3).
    Warns when the patch tokens get no gradient but the prefix tokens do (a layer after
    the last token mixing, such as the final norm).
    """
    ops = bk.ops
    shape = tuple(ops.shape(activation))
    multi = grad is not None and len(ops.shape(grad)) == len(shape) + 1
    kind = cam_input(bk, model, x, "a CAM method")
    if kind.kind in ("signal", "volume") and tokens is None:  # 1-D / 3-D feature maps: no grid to make
        check_layer_rank(bk, kind, shape, layer, "a CAM method")
        return activation, grad, bk.activation_channel_axis() % len(shape)
    if len(shape) == 4:
        if (tokens is not None and tokens.layout == "NCHW") or not _channels_last_grid(bk, model, layer, shape, tokens):
            return activation, grad, bk.activation_channel_axis() % 4
        return activation, grad, 3
    if len(shape) != 3 or (tokens is not None and tokens.layout not in (None, "NTC")):
        raise ModelError(
            f"a CAM method needs a layer with a 4-D output (N, C, H, W) / (N, H, W, C), or (N, tokens, channels); "
            f"layer {layer!r} gives {shape}. Pick a convolutional or transformer-block layer "
            "(`gradsight layers --model ...` lists them)."
        )
    if len(ops.shape(x)) != 4 and tokens is None:
        # Only image models have token layers here: a 3-D output of another input is not a patch grid,
        # which a square token grid would silently scramble.
        raise ModelError(
            f"layer {layer!r} gives {shape} on inputs of shape {tuple(ops.shape(x))}: token layers are read as "
            "image patches only for image inputs (N, C, H, W) / (N, H, W, C). For patch tokens of another input "
            "pass tokens=gs.Tokens(prefix=..., grid=(h, w))."
        )
    n, t, c = shape
    prefix, (h, w) = token_grid(model, spatial_size(bk, model, tuple(ops.shape(x))), t, tokens)
    grid = ops.reshape(activation[:, prefix:], (n, h, w, c))
    if grad is None:
        return grid, None, 3
    lead = (slice(None),) * (2 if multi else 1)
    _warn_prefix_only(ops.numpy(grad), prefix, layer, multi)
    k = (ops.shape(grad)[1],) if multi else ()
    return grid, ops.reshape(grad[lead + (slice(prefix, None),)], (n,) + k + (h, w, c)), 3


def _warn_prefix_only(grad: np.ndarray, prefix: int, layer: str | None, multi: bool) -> None:
    g = grad.reshape((-1,) + grad.shape[(2 if multi else 1):])
    head, patches = g[:, :prefix].reshape(len(g), -1), g[:, prefix:].reshape(len(g), -1)
    dead = np.flatnonzero(~np.any(patches != 0, axis=1) & np.any(head != 0, axis=1))
    if dead.size:
        warn(
            f"layer {layer!r}: the gradient is zero at every patch token (rows {dead[:10].tolist()}) and non-zero only "
            f"at the {prefix} prefix token(s): the score reads only the class token after this layer (the final "
            "norm of a transformer is the classic case), so the map would be empty. Use layer='auto' (the input of "
            "the last block's attention) or an earlier block.",
            ZeroGradientWarning,
        )
