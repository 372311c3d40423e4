"""Which layer Grad-CAM uses when none is named (``layer=None`` / ``"auto"``), framework-free.

The rule (also in the README):

1. Among the layer calls of one forward pass whose output is a feature map with more
   than one position (in completion order; 4-D for images, 3-D (N, C, L) for 1-D signals,
   5-D for volumes), find the last call of a **convolution** (any layer
   whose class name contains ``Conv``: ``Conv2d``, ``Conv2D``, ``SeparableConv2D``,
   ``DepthwiseConv2D``, a user's ``ConvBlock``, ...).
2. The automatic layer is the **last call at that convolution's spatial size** from there
   on, skipping dropout and noise layers: so an activation, a batch norm, a residual
   addition or a whole block that ends at that size is taken (``relu5_3``, ResNet's
   ``layer4``, Keras' ``conv5_block3_out``), never a pooling or a Dropout after it
   (whose maps are coarser or, in training mode, random).
3. A model with no convolution: the last 4-D spatial layer call, as before (else the
   last spatial call of any rank).

Only convolutions of the first convolution's rank count (a 1-D CNN's ``Conv1d`` gives 3-D
maps, a 3-D CNN's ``Conv3d`` 5-D ones; a ``Conv1d`` gate over channels inside a 2-D CNN,
as in ECA-Net, is skipped); later calls are taken only at the same spatial size (so the
same rank).

Backends record ``(name, class name, output shape)`` per call and ask :func:`pick`;
:func:`auto_layer_error` is the error when no call qualifies. Framework-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LayerNotCalledError

__all__ = ["auto_layer_error", "is_conv", "is_dropout", "pick", "spatial_hint"]

_DROPOUT = ("Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout")


def is_conv(kind: str) -> bool:
    """A convolution layer, judged by its class name."""
    return "Conv" in kind


def is_dropout(kind: str) -> bool:
    return any(d in kind for d in _DROPOUT)


def pick(kinds: Sequence[str], sizes: Sequence[tuple[int | None, int | None]]) -> int | None:
    """Index of the automatic layer among spatial layer calls.

    Parameters
    ----------
    kinds:
        Class name of the layer of each call, in completion order.
    sizes:
        Spatial size of each call's output, same order: (H, W), or (L,) / (D, H, W).

    Returns
    -------
    The index of the chosen call, or None when there is none.
    """
    if not kinds:
        return None
    convs = [k for k, kind in enumerate(kinds) if is_conv(kind)]
    if convs:  # the first convolution's rank is the input's: ECA-style Conv1d gates inside a 2-D CNN do not count
        convs = [k for k in convs if len(sizes[k]) == len(sizes[convs[0]])]
    if not convs:
        images = [k for k, size in enumerate(sizes) if len(size) == 2]
        return (images or [len(kinds) - 1])[-1]
    c = convs[-1]
    chosen = c
    for k in range(c + 1, len(kinds)):
        if sizes[k] == sizes[c] and not is_dropout(kinds[k]):
            chosen = k
    return chosen


def spatial_hint(layers: Sequence[tuple[str, str]], most: int = 12) -> str:
    """``" Its convolutional layers: ..."`` for an unknown layer name with no close match.

    ``layers``: (name, class name) of every layer, in model order; the last ``most``
    convolutions are listed (Grad-CAM layers are usually the late ones).
    """
    convs = [name for name, kind in layers if is_conv(kind)]
    if not convs:
        return " The model has no convolutional layer; layer=None picks the last layer with a spatial output."
    shown = convs[-most:]
    which = "Its convolutional layers" if len(shown) == len(convs) else f"Its last {len(shown)} convolutional layers (of {len(convs)})"
    return (
        f" {which}: {', '.join(repr(n) for n in shown)}; "
        "layer=None picks the last convolution's output (`gradsight layers --model ...` lists every layer)."
    )


def auto_layer_error(model: Any, layout: str) -> LayerNotCalledError:
    """The error when no layer produced a spatial output for the automatic Grad-CAM layer."""
    return LayerNotCalledError(
        f"no layer of this {type(model).__name__} produced a 4-D {layout} output with spatial size > 1 (or a "
        "3-D / 5-D one of a 1-D / 3-D convolution), "
        "so Grad-CAM has no map to weigh; pass layer=NAME (`gradsight layers --model ...` lists them)."
    )
