"""Deletion and insertion (Petsiuk et al. 2018, RISE), batched over images and steps.

Pixels are ranked by the map (decreasing value; ties by raster order, see
:func:`~gradsight.evaluate._common.pixel_ranks`). *Deletion* replaces the top-ranked
pixels (all channels) with a substrate ``step`` pixels at a time; *insertion* starts from
the substrate and restores them. The curve is the explained class's softmax probability
(``prob=False``: the raw output) after ``k`` pixels changed, ``k = 0, step, 2 step, ...,
H*W`` (the last step may be shorter), against the fraction ``k / (H*W)``; the AUC is the
trapezoid rule over those fractions on [0, 1]. When ``step`` divides ``H*W`` this is
exactly RISE's ``auc``: ``(sum - first/2 - last/2) / n_steps``.

Every perturbed image of every step of every image goes through :func:`gradsight.predict`
in chunks of ``batch_size``; no Python loop runs over single images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ._common import (
    Substrate,
    as_numpy,
    channel_axis,
    class_scores,
    image_shape,
    maps_of,
    pixel_ranks,
    substrate_of,
    targets_of,
)

__all__ = ["CurveResult", "deletion", "insertion", "perturbation_scores", "step_pixels"]

RISE_STEP = 1.0 / 224.0
"""RISE's default: 224 pixels per step at 224x224, i.e. 1/224 of the image per step."""


@dataclass
class CurveResult:
    """Per-sample curves of a deletion or insertion run.

    Attributes
    ----------
    metric: ``"deletion"`` or ``"insertion"``.
    fractions: (S,) fraction of pixels changed at each point, 0 first, 1 last.
    curves: (N, S) the explained class's probability (or raw score) at each point.
    auc: (N,) trapezoid area under each curve over [0, 1].
    targets: (N,) the class explained for each image.
    step: pixels changed per step.
    """

    metric: str
    fractions: np.ndarray
    curves: np.ndarray
    auc: np.ndarray
    targets: np.ndarray
    step: int


def step_pixels(step: float, n_pixels: int) -> int:
    """Pixels per step: an int is taken as is; a float in (0, 1) is a fraction of the image (rounded, >= 1)."""
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        if step < 1:
            raise InputError(f"step must be at least 1 pixel; got {step}")
        return int(step)
    if isinstance(step, float) and 0.0 < step < 1.0:
        return max(1, round(step * n_pixels))
    raise InputError(f"step must be a number of pixels (int >= 1) or a fraction of the image in (0, 1); got {step!r}")


def perturbation_scores(
    model: Any,
    start: np.ndarray,
    finish: np.ndarray,
    ranks: np.ndarray,
    counts: np.ndarray,
    targets: np.ndarray,
    *,
    prob: bool = True,
    batch_size: int = 64,
    axis: int = 1,
    **predict_options: Any,
) -> np.ndarray:
    """(N, S) class scores of the images ``where(rank < counts[s], finish, start)``.

    ``start`` and ``finish`` (N, ...) in the model's layout, ``ranks`` (N, H*W) from
    :func:`pixel_ranks`, ``counts`` (S,) the number of top-ranked pixels taken from
    ``finish``. All N*S images are built chunk by chunk and go through
    :func:`gradsight.predict` ``batch_size`` at a time.

    Each chunk is built exactly (no arithmetic touches a value) on the float32 bits:
    ``start ^ ((start ^ finish) * changed)``, ``changed`` 1 on the changed pixels (every
    channel) and 0 elsewhere (an integer product: exact); ``start ^ finish`` is computed
    once per image. A chunk's
    rows are consecutive steps of one or a few images: each image's rows take two
    vectorised passes, broadcasting that image's bits over its steps (no gathered copies),
    into one buffer reused by every chunk (``gs.predict`` copies its input).
    """
    from ..api import predict

    n, s = len(start), len(counts)
    h, w = image_shape(start, axis)
    shape = start.shape[1:]
    # (N, C, H*W) for channels first, (N, H*W, C) for channels last; the mask broadcasts over C
    flat = (n, -1, h * w) if axis == 1 else (n, h * w, -1)
    bits_start = np.ascontiguousarray(start, dtype=np.float32).view(np.uint32).reshape(flat)
    bits_diff = bits_start ^ np.ascontiguousarray(finish, dtype=np.float32).view(np.uint32).reshape(flat)
    ranks = np.asarray(ranks)
    counts = np.asarray(counts, dtype=ranks.dtype)
    total = n * s
    out = np.empty(total, dtype=np.float64)
    buffer = np.empty((min(batch_size, total), *bits_start.shape[1:]), dtype=np.uint32)
    for b0 in range(0, total, batch_size):
        b1 = min(total, b0 + batch_size)
        idx = np.arange(b0, b1)
        img, pt = idx // s, idx % s
        bits = buffer[: b1 - b0]
        for i in range(int(img[0]), int(img[-1]) + 1):  # the images this chunk's rows belong to
            rows = slice(max(i * s, b0) - b0, min((i + 1) * s, b1) - b0)
            changed = ranks[i] < counts[pt[rows], None]  # (steps, H*W) bool
            changed = changed[:, None, :] if axis == 1 else changed[:, :, None]
            np.multiply(bits_diff[i], changed, out=bits[rows])  # the bits times 0 or 1: exact
            np.bitwise_xor(bits[rows], bits_start[i], out=bits[rows])
        logits = predict(model, bits.view(np.float32).reshape(b1 - b0, *shape), **predict_options)
        out[idx] = class_scores(logits, targets[img], prob)
    return out.reshape(n, s)


def _curve(
    metric: str,
    model: Any,
    x: Any,
    explanation: Any,
    target: Any,
    step: float,
    substrate: Substrate,
    prob: bool,
    batch_size: int,
    explain_options: dict[str, Any] | None,
    predict_options: dict[str, Any],
) -> CurveResult:
    from ..api import predict

    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1; got {batch_size}")
    x = as_numpy(x)
    axis = channel_axis(model)
    maps, exp = maps_of(model, x, explanation, target, explain_options)
    h, w = image_shape(x, axis)
    hw = h * w
    k = step_pixels(step, hw)
    n_steps = -(-hw // k)
    counts = np.minimum(np.arange(n_steps + 1) * k, hw)
    outputs = predict(model, x, batch_size=batch_size, **predict_options)
    targets = targets_of(target, exp, outputs)
    sub = substrate_of(substrate, x, axis)
    # The clean image is one point of every curve (deletion: none changed; insertion: all
    # restored): its score comes from the forward pass above, not a second one.
    clean = class_scores(outputs, targets, prob)[:, None]
    deleting = metric == "deletion"
    start, finish = (x, sub) if deleting else (sub, x)
    rest = perturbation_scores(
        model, start, finish, pixel_ranks(maps), counts[1:] if deleting else counts[:-1], targets,
        prob=prob, batch_size=batch_size, axis=axis, **predict_options,
    )  # fmt: skip
    curves = np.concatenate([clean, rest] if deleting else [rest, clean], axis=1)
    fractions = counts / hw
    auc = np.trapezoid(curves, fractions, axis=1)
    return CurveResult(metric, fractions, curves, auc, targets, k)


def deletion(
    model: Any,
    x: Any,
    explanation: Any,
    target: Any = None,
    *,
    step: float = RISE_STEP,
    substrate: Substrate = "zeros",
    prob: bool = True,
    batch_size: int = 64,
    explain_options: dict[str, Any] | None = None,
    **predict_options: Any,
) -> CurveResult:
    """Deletion curves and AUCs (lower is better: the class vanishes fast).

    Parameters
    ----------
    model: a ``torch.nn.Module`` or ``keras.Model``.
    x: (N, C, H, W) or (N, H, W, C) batch in the model's layout, preprocessed.
    explanation: an :class:`~gradsight.Explanation` (its ``heatmaps`` rank the pixels and
        its ``targets`` are explained), an (N, H, W) array of scores, or a method name
        (then ``gs.explain(model, x, method, target, **explain_options)`` runs first).
    target: None (the explanation's targets, else each image's top-1), an int or N ints.
    step: pixels per step (int) or a fraction of the image (float); default 1/224 of the
        image (RISE: 224 pixels at 224x224).
    substrate: ``"zeros"`` (default, RISE), ``"blur"``, ``"mean"``, an array or a callable.
    prob: softmax probability of the class (default) or the raw output (``False``).
    batch_size: images per forward pass.
    predict_options: ``output``, ``eval_mode``, ``logits`` as in :func:`gradsight.predict`.
    """
    return _curve("deletion", model, x, explanation, target, step, substrate, prob, batch_size,
                  explain_options, predict_options)  # fmt: skip


def insertion(
    model: Any,
    x: Any,
    explanation: Any,
    target: Any = None,
    *,
    step: float = RISE_STEP,
    substrate: Substrate = "blur",
    prob: bool = True,
    batch_size: int = 64,
    explain_options: dict[str, Any] | None = None,
    **predict_options: Any,
) -> CurveResult:
    """Insertion curves and AUCs (higher is better): starts from the substrate (default the
    RISE blur, kernel 11, sigma 5) and restores the top-ranked pixels. Parameters as in
    :func:`deletion`."""
    return _curve("insertion", model, x, explanation, target, step, substrate, prob, batch_size,
                  explain_options, predict_options)  # fmt: skip
