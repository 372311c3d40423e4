"""What a loaded model takes as input, read from the model itself (for the CLI's image reading).

- :func:`input_spec`: the channel count and rank (an :class:`~gradsight.inputs.InputSpec`):
  ``NCHW``/``NHWC`` batches with 1 (gray), 3 (RGB) or 4 (RGBA) channels, ``NHW`` (gray,
  no channel axis: an MLP on (N, 28, 28)), or ``NF`` (flattened pixels: (N, 784));
- :func:`default_preprocessing`: the preprocessing mode a model expects where it can be
  known (a Keras ``Rescaling``/``Normalization`` layer at the input, the bundled models'
  own setting), otherwise a guess and a note that says so.

Neither torch nor tensorflow is imported until a model of theirs is inspected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError
from ..inputs import PREPROCESSING, InputSpec

__all__ = ["default_preprocessing", "input_spec"]

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def input_spec(model: Any, layout: str | None = None) -> InputSpec:
    """What ``model`` (torch or Keras) takes; ``layout`` ("NCHW"/"NHWC") is the fallback for image models.

    Keras: read from the model's input shape. PyTorch: the first ``Conv2d``'s ``in_channels``;
    a model without one (an MLP) is tried on blank (N, s, s), (N, 1, s, s) and (N, s*s)
    batches for its first ``Linear``'s ``in_features`` = s*s (or 3*s*s for RGB).
    """
    if _is_keras(model):
        return _keras_spec(model, layout)
    return _torch_spec(model, layout)


def _is_keras(model: Any) -> bool:
    return any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(model).__mro__)


def _checked(channels: int, where: str) -> int:
    if channels not in _MODES:
        raise InputError(
            f"the model takes {channels} input channels ({where}); images can be read as 1 (gray), 3 (RGB) or "
            "4 (RGBA) channels: prepare the batch yourself and call gradsight.explain."
        )
    return channels


def _keras_spec(model: Any, layout: str | None) -> InputSpec:
    from ..backends.keras.models import input_info

    shape, fmt, _ = input_info(model)
    if shape is None:
        return InputSpec(layout or "NHWC", 3)
    rank = len(shape)
    if rank == 4:
        if fmt == "channels_first":
            c, h, w = shape[1], shape[2], shape[3]
            lay = "NCHW"
        else:
            h, w, c = shape[1], shape[2], shape[3]
            lay = "NHWC"
        size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        return InputSpec(lay, _checked(int(c) if c is not None else 3, f"input shape {shape}"), size)
    if rank == 3 and isinstance(shape[1], int) and isinstance(shape[2], int):
        return InputSpec("NHW", 1, (shape[1], shape[2]))
    if rank == 2 and isinstance(shape[1], int):
        return _flat_spec(shape[1], f"input shape {shape}")
    raise InputError(f"the model's input shape {shape} is not an image batch; prepare x yourself and call gradsight.explain.")


def _flat_spec(features: int, where: str) -> InputSpec:
    for c in (1, 3):
        s = math.isqrt(features // c)
        if features % c == 0 and s * s * c == features:
            return InputSpec("NF", c, (s, s))
    raise InputError(
        f"the model takes {features} features per sample ({where}), not a square image's pixels; prepare x "
        "yourself and call gradsight.explain."
    )


def _torch_spec(model: Any, layout: str | None) -> InputSpec:
    import torch

    first_conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if first_conv is not None:
        return InputSpec("NCHW", _checked(int(first_conv.in_channels), f"its first Conv2d takes {first_conv.in_channels}"))
    linear = next((m for m in model.modules() if isinstance(m, torch.nn.Linear)), None)
    if linear is None:
        return InputSpec(layout or "NCHW", 3)
    flat = _flat_spec(int(linear.in_features), f"its first Linear takes {linear.in_features}")
    assert flat.size is not None
    candidates = (
        [InputSpec("NHW", 1, flat.size), InputSpec("NCHW", 1, flat.size), flat]
        if flat.channels == 1
        else [InputSpec("NCHW", 3, flat.size), flat]
    )
    from ..backends import backend_for

    bk = backend_for(model)
    for spec in candidates:
        try:
            with bk.session(model, eval_mode=True), torch.no_grad():
                bk.forward(model, bk.prepare_input(model, np.zeros(spec.shape(1, flat.size), np.float32)))
        except Exception:  # noqa: BLE001 - a shape the model does not take; try the next
            continue
        return spec
    return flat


def default_preprocessing(model: Any, bundled: str | None = None) -> tuple[str, str | None]:
    """``(mode, note)``: the preprocessing a model expects, and a one-line note when it is a guess.

    ``bundled``: the setting a bundled model declares (``ModelInfo.preprocessing``), taken as is.
    Keras: a ``Rescaling`` or ``Normalization`` layer before the first convolution/dense layer
    means the model scales its own input from raw pixels (``raw``), unless the normalisation's
    mean is below 1 (it was adapted on [0, 1] data: ``unit``). Otherwise: ``imagenet`` for
    3-channel models, ``unit`` for others, with a note that says so.
    """
    if bundled is not None and bundled != "imagenet":
        return bundled, None
    if _is_keras(model):
        found = _keras_input_scaling(model)
        if found is not None:
            return found
    channels = input_spec(model).channels
    guess = "imagenet" if channels == 3 else "unit"
    return guess, (
        f"inputs scaled with --preprocess {guess} ({PREPROCESSING[guess]}): the model does not say how it was "
        "trained; pass --preprocess unit|raw|imagenet|caffe|tf if it expects another"
    )


def _keras_input_scaling(model: Any) -> tuple[str, str | None] | None:
    from ..backends.keras.capture import iter_layers

    for _path, layer in iter_layers(model):
        kind = type(layer).__name__
        if kind == "Rescaling":
            scale = float(np.mean(np.asarray(layer.scale)))
            return ("raw", None) if scale < 0.5 else ("unit", None)  # 1/255, 1/127.5 vs. already [0, 1]
        if kind == "Normalization":
            mean = getattr(layer, "mean", None)
            value = float(np.mean(np.asarray(mean))) if mean is not None else 0.0
            return ("raw", None) if value > 1.0 else ("unit", None)
        if kind in ("Dense", "Flatten") or "Conv" in kind:
            return None
    return None
