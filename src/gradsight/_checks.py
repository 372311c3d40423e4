"""Checks of a call's input and result that turn silent wrong answers into errors or warnings.

:func:`gradsight.explain` calls, in order: :func:`target` on the user's ``target``,
:func:`before` on the raw ``x`` (and the model), :func:`prepared` on the framework
tensor, :func:`after` on the method's result. Each raises a typed error from
:mod:`gradsight.errors` that says what to do, or warns. None of them changes the model.

- a 1-D ``x``: both readings are offered (``x[None]``: one sample; ``x[:, None]``: N samples);
- an empty batch, a model or input on PyTorch's ``meta`` device;
- NaN or inf in ``x`` (the samples are named), and non-finite outputs or attributions
  for finite inputs;
- a 1-channel batch for a PyTorch model whose first convolution takes 3 channels;
- ``target`` as a numpy array, a ``torch.Tensor`` or a ``tf.Tensor``: accepted like a list;
- warnings: Grad-CAM at a 1x1 layer; SmoothGrad on a constant sample.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import numpy as np

from .errors import (
    ConstantInputWarning,
    InputError,
    ModelError,
    NoLocationWarning,
    warn,
)

__all__ = ["after", "before", "prepared", "target"]

_SHOWN = 10  # samples named in a message


def _names(idx: np.ndarray) -> str:
    listed = ", ".join(str(int(i)) for i in idx[:_SHOWN])
    return f"[{listed}{', ...' if len(idx) > _SHOWN else ''}] ({len(idx)} of them)" if len(idx) > 1 else f"[{listed}]"


def _is_tensor(v: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.Tensor):
        return True
    tf = sys.modules.get("tensorflow")
    return tf is not None and tf.is_tensor(v)


def target(t: Any) -> Any:
    """A numpy array / torch / tf tensor ``target`` as an int or a list (what a list would give)."""
    if _is_tensor(t):
        t = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    if isinstance(t, np.ndarray):
        if t.dtype.kind not in "iu":
            if t.dtype.kind == "f" and np.all(np.isfinite(t)) and np.all(t == np.round(t)):
                t = t.astype(np.int64)
            else:
                return t  # as_target names what is wrong
        return int(t) if t.ndim == 0 else t.tolist()
    return t


def _meta(v: Any) -> bool:
    return bool(getattr(v, "is_meta", False))


def before(model: Any, x: Any, allow_empty: bool = False) -> None:
    """Checks on the raw input, before it is converted (``allow_empty``: a batch of 0 is fine, for predict)."""
    torch = sys.modules.get("torch")
    # names only when one is on 'meta': the plain walk is half the named one, and runs on every call
    if torch is not None and isinstance(model, torch.nn.Module) and any(
        t.is_meta for t in itertools.chain(model.parameters(), model.buffers())
    ):
        meta = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if _meta(p)]
        if meta:
            raise ModelError(
                f"the model's {meta[0]!r}{f' (and {len(meta) - 1} more)' if len(meta) > 1 else ''} is on the "
                "'meta' device, which holds shapes but no values; materialise it first, e.g. "
                "model.to_empty(device='cpu') then model.load_state_dict(...)."
            )
    if _meta(x):
        raise ModelError("x is on the 'meta' device, which holds no values; pass a real tensor (e.g. on 'cpu').")
    shape = tuple(getattr(x, "shape", ()) or ())
    if len(shape) == 1:
        raise InputError(
            f"x has shape {shape}: a batch needs a leading batch axis. If it is one sample of {shape[0]} values use "
            f"x[None] (shape (1, {shape[0]})); if it is {shape[0]} samples of one value each use x[:, None] "
            f"(shape ({shape[0]}, 1))."
        )
    if shape and shape[0] == 0 and not allow_empty:
        raise InputError(f"x is an empty batch (shape {shape}); pass at least one sample.")


def _finite_rows(a: np.ndarray) -> np.ndarray:
    return np.isfinite(a.reshape(len(a), -1)).all(axis=1)


def _per_sample(xt: Any) -> dict[str, np.ndarray]:
    """Per-sample finite / NaN / constant flags of a framework tensor, reduced where it lives (no copy of x)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(xt, torch.Tensor):
        # Two reductions, no full-size temporaries: amax/amin propagate NaN, so a row is finite
        # exactly when both are; the exact NaN / inf flags are computed only when one is not.
        flat = xt.detach().reshape(len(xt), -1)
        hi, lo = flat.amax(1), flat.amin(1)
        finite = torch.isfinite(hi) & torch.isfinite(lo)
        if bool(finite.all()):
            none = torch.zeros_like(finite)
            rows = {"finite": finite, "nan": none, "inf": none, "constant": hi == lo}
        else:
            rows = {"finite": finite, "nan": torch.isnan(flat).any(1), "inf": torch.isinf(flat).any(1),
                    "constant": hi == lo}
        return {k: v.cpu().numpy() for k, v in rows.items()}
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.is_tensor(xt):
        host = "CPU" in str(getattr(xt, "device", "")) and tf.as_dtype(xt.dtype) in (tf.float16, tf.float32, tf.float64)
        if host and xt.shape.num_elements():
            # a host tensor's numpy view (no copy): two numpy reductions cost less than one eager TF op
            return _numpy_rows(np.asarray(xt))  # __array__ shares memory; .numpy() copies
        # Three reductions (each eager op costs ~0.1 ms): a row's sum of x * 0 is 0 exactly when
        # the row is finite (NaN and inf both give NaN); the exact flags only for a bad row.
        flat = tf.reshape(xt, (int(xt.shape[0]), -1))
        finite = (tf.reduce_sum(flat * 0, 1) == 0).numpy()
        constant = (tf.reduce_max(flat, 1) == tf.reduce_min(flat, 1)).numpy()
        if finite.all():
            return {"finite": finite, "nan": ~finite, "inf": ~finite, "constant": constant}
        return {"finite": finite, "nan": tf.reduce_any(tf.math.is_nan(flat), 1).numpy(),
                "inf": tf.reduce_any(tf.math.is_inf(flat), 1).numpy(), "constant": constant}
    return _numpy_rows(np.asarray(xt))


def _numpy_rows(a: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_per_sample` of a numpy array: as for torch, max and min propagate NaN (and show an inf),
    so a row is finite exactly when both are; the exact NaN / inf flags only for a bad row."""
    flat = a.reshape(len(a), -1)
    hi, lo = flat.max(1), flat.min(1)
    finite = np.isfinite(hi) & np.isfinite(lo)
    if finite.all():
        return {"finite": finite, "nan": ~finite, "inf": ~finite, "constant": hi == lo}
    return {"finite": finite, "nan": np.isnan(flat).any(1), "inf": np.isinf(flat).any(1), "constant": hi == lo}


def prepared(
    bk: Any, model: Any, xt: Any, method: str | None = None, options: dict[str, Any] | None = None,
    channels: bool = True,
) -> None:
    """Checks on the framework tensor ``xt`` (after ``bk.prepare_input``); ``channels=False``: not
    against the first convolution's (one of several inputs, which that convolution may not read)."""
    rows = _per_sample(xt)
    if not rows["finite"].all():
        bad = np.flatnonzero(~rows["finite"])
        kinds = " and ".join(k for k in ("NaN", "inf") if rows[k.lower()][bad].any())
        raise InputError(
            f"x contains {kinds} in sample(s) {_names(bad)}; the model's outputs and every map would be "
            "meaningless. Fix or drop those samples (np.isfinite(x) shows where)."
        )
    shape = tuple(int(s) for s in bk.ops.shape(xt))
    if channels and bk.name == "torch" and len(shape) == 4:
        _check_torch_channels(model, shape)
    if method == "smoothgrad" and float((options or {}).get("noise", 0.15)) > 0:
        const = np.flatnonzero(rows["constant"])
        if const.size:
            warn(
                f"smoothgrad: sample(s) {_names(const)} are constant images; the noise is a fraction of each "
                "sample's max - min, which is 0, so the result is the plain gradient (saliency).",
                ConstantInputWarning,
            )


def _check_torch_channels(model: Any, shape: tuple[int, ...]) -> None:
    torch = sys.modules["torch"]
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None or shape[1] == conv.in_channels or shape[-1] == conv.in_channels:
        return  # channels-last mistakes get prepare_input's own message
    if shape[1] == 1 and conv.in_channels == 3:
        raise InputError(
            f"x has shape {shape}: 1 channel (grayscale), but the model's first convolution takes 3 (RGB). Repeat "
            "the channel: x.expand(-1, 3, -1, -1) (numpy: np.repeat(x, 3, axis=1)), then normalise as the model "
            "expects."
        )
    raise InputError(
        f"x has shape {shape}: {shape[1]} channel(s), but the model's first convolution takes {conv.in_channels}; "
        f"pass (N, {conv.in_channels}, H, W) batches."
    )


def after(method: str, result: Any) -> None:
    """Checks on a method's result: non-finite outputs or maps for finite inputs; flat Grad-CAM maps."""
    outputs = result.outputs if isinstance(result.outputs, list) else [result.outputs]
    bad = np.zeros(len(result.scores), bool)
    for o in outputs:
        o = np.asarray(o)
        if o.dtype.kind == "f" and o.ndim >= 1 and len(o) == len(bad):
            bad |= ~_finite_rows(o)
    if bad.any():
        raise ModelError(
            f"the model's outputs are NaN or inf for sample(s) {_names(np.flatnonzero(bad))} although the inputs "
            "are finite (an overflow, a log of 0 or NaN weights inside the model?); no explanation is returned."
        )
    attr = np.asarray(result.attributions)
    if attr.dtype.kind == "f" and not np.isfinite(attr).all():
        rows = np.flatnonzero(~_finite_rows(attr))
        raise ModelError(
            f"{method}: the attributions are NaN or inf for sample(s) {_names(rows)} although inputs and outputs "
            "are finite (a gradient overflow inside the model?)."
        )
    if method in ("gradcam", "guided_gradcam"):
        cam = np.asarray(result.attributions if method == "gradcam" else result.extras.get("cam"))
        if cam.ndim >= 3 and cam.shape[-1] * cam.shape[-2] == 1:
            warn(
                f"{method}: layer {result.layer!r} has a 1x1 output, so its map carries no location (the heat map "
                "is flat). Choose a layer with a spatial output (layer=None picks the last one).",
                NoLocationWarning,
            )
