"""Integrated Gradients (Sundararajan et al. 2017): the gradient integrated along a path."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import InputError, UnknownOptionError
from ..targets import Target
from ._common import MethodResult, input_heatmaps, pinned_target, positive_int, sample_range, warn_zero
from ._layout import input_kind

QUADRATURES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
BASELINES = ("blur", "uniform")
BLUR_FRACTION = 0.1
"""``baseline="blur"``: Gaussian blur with sigma = 0.1 x max(H, W) pixels (per channel, reflected edges)."""


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha`` in [0, 1] and weights (float64) of the integral over [0, 1].

    ``riemann_trapezoid`` is the true trapezoid rule: nodes i / (steps - 1), weights
    1 / (steps - 1) halved at both ends (they sum to 1). Captum's ``riemann_trapezoid``
    uses the same nodes with weights 1 / steps halved at the ends (summing to
    (steps - 1) / steps), i.e. its result is ours times (steps - 1) / steps.
    """
    if rule not in QUADRATURES:
        raise UnknownOptionError(f"rule={rule!r} is not valid; use one of {list(QUADRATURES)}.")
    if not (isinstance(steps, int) and steps >= (2 if rule == "riemann_trapezoid" else 1)):
        raise UnknownOptionError(f"steps must be an int >= {2 if rule == 'riemann_trapezoid' else 1}, got {steps!r}.")
    i = np.arange(steps, dtype=np.float64)
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if rule == "riemann_trapezoid":
        w = np.full(steps, 1.0 / (steps - 1))
        w[0] /= 2
        w[-1] /= 2
        return i / (steps - 1), w
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return (i + shift) / steps, np.full(steps, 1.0 / steps)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, C, H, W) over H and W, reflected edges, float64."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = img.astype(np.float64)
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="reflect" if out.shape[axis] > r else "edge")
        out = sum(k[j] * np.take(p, np.arange(j, j + out.shape[axis]), axis=axis) for j in range(2 * r + 1))
    return out


def baseline_array(bk: Backend, model: Any, x: Any, baseline: Any, seed: int | None) -> np.ndarray:
    """The baseline x' as float32 numpy of ``x``'s shape, in the model's layout."""
    xn = bk.ops.numpy(x).astype(np.float32)
    shape = xn.shape
    packing = bk.settings.inputs
    if packing is not None and isinstance(baseline, (tuple, list, dict)):  # one per input
        return packing.pack_numpy(baseline, len(xn), "baseline")
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise UnknownOptionError(
                f"baseline={baseline!r} is not valid; use a number, an array broadcastable to x, or one of "
                f"{list(BASELINES)}."
            )
        axis = input_kind(bk, model, shape).channel_axis  # channels-last inputs: drawn channels first
        last = axis is not None and axis == len(shape) - 1
        canon = np.moveaxis(xn, -1, 1) if last else xn
        if baseline == "blur":
            if packing is not None:
                raise InputError(
                    "baseline='blur' blurs one image; with several inputs pass one baseline per input, e.g. "
                    "baseline=(blurred_images, 0.0)."
                )
            if canon.ndim != 4:
                raise InputError("baseline='blur' needs image batches (N, C, H, W) or (N, H, W, C).")
            out = _blur(canon, BLUR_FRACTION * max(canon.shape[2:]))
        else:  # "uniform": per sample in [min x_i, max x_i], drawn in channels-first order (framework-free)
            flat = canon.reshape(len(canon), -1)
            lo = flat.min(1).reshape((-1,) + (1,) * (canon.ndim - 1))
            if packing is not None:  # several inputs: each in its own range
                lo = np.concatenate([np.broadcast_to(flat[:, a:b].min(1, keepdims=True), (len(flat), b - a))
                                     for a, b in packing.bounds], axis=1)
            rng = np.random.default_rng(seed)
            out = lo + sample_range(bk, canon) * rng.random(canon.shape, dtype=np.float32)
        out = np.moveaxis(out, 1, -1) if last else out
        return np.ascontiguousarray(out, dtype=np.float32)
    if hasattr(baseline, "detach"):
        baseline = baseline.detach().cpu().numpy()
    try:
        arr = np.asarray(baseline, dtype=np.float32)
        return np.array(np.broadcast_to(arr, shape))  # a writable copy
    except (TypeError, ValueError):
        raise InputError(
            f"baseline must be a number, an array broadcastable to x's shape {shape} (model layout), 'blur' or "
            f"'uniform'; got {type(baseline).__name__} {np.shape(baseline) if hasattr(baseline, 'shape') else ''}."
        ) from None


def _rows(outputs: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a model output (one tensor, or a list of them)."""
    return [o[start:stop] for o in outputs] if isinstance(outputs, list) else outputs[start:stop]


def integrated_gradients(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    steps: int = 50,
    rule: str = "gausslegendre",
    baseline: Any = 0.0,
    batch_size: int = 32,
    seed: int | None = None,
    output: Any = None,
) -> MethodResult:
    """(x - x') * integral_0^1 dy/dx (x' + a (x - x')) da, by the quadrature ``rule`` with ``steps`` nodes.

    ``rule``: ``"gausslegendre"`` (default), ``"riemann_left"``, ``"riemann_right"``,
    ``"riemann_middle"`` or ``"riemann_trapezoid"`` (the true trapezoid rule; see
    :func:`quadrature` for where Captum's differs). ``baseline`` x': a number, an array
    broadcastable to x (model layout), ``"blur"`` (x Gaussian-blurred, sigma 0.1 x max(H, W))
    or ``"uniform"`` (uniform noise in each sample's value range, from ``seed``). Several inputs
    (``x`` a tuple): the path runs from the baselines to the inputs, all at once; ``baseline`` is
    a number or a tuple with one per input; ``"uniform"`` uses each input's own range;
    ``extras["delta"]`` is the completeness error over all inputs together.
    The steps x N gradients run in batches of at most ``batch_size`` rows (memory flat in
    ``steps``); new batches keep the input's memory layout. The target's choices (e.g. the
    top-1 class) are made once, on x. ``attributions`` (N, *input) ((N, k, *input) for k
    targets); ``extras["delta"]`` (N,) or (N, k): sum of attributions - (y(x) - y(x')),
    the completeness error.
    """
    positive_int("batch_size", batch_size)
    alphas, weights = quadrature(rule, steps)
    ops = bk.ops
    shape = tuple(ops.shape(x))
    n = shape[0]
    base_np = baseline_array(bk, model, x, baseline, seed)
    base = ops.from_numpy(base_np, x)
    # y(x) and y(x') (for the delta) from one forward when 2N rows are no more than a gradient pass takes
    both = 2 * n <= max(batch_size, n)
    clean_out = bk.forward(model, ops.concat([x, base], axis=0) if both else x, output)
    base_out = None
    if both:
        clean_out, base_out = _rows(clean_out, 0, n), _rows(clean_out, n, 2 * n)
    scores, idx, clean_np, target = pinned_target(bk, clean_out, target)
    diff = x - base
    zero_base = not base_np.any()  # the path is alpha * x: no tiled baseline to add (same values)

    per_chunk = max(1, batch_size // n)  # steps of the whole batch per pass
    img_step = min(n, batch_size)
    totals: list[Any] = [None] * ((n + img_step - 1) // img_step)
    for s0 in range(0, steps, per_chunk):
        k = min(per_chunk, steps - s0)
        for ci, n0 in enumerate(range(0, n, img_step)):
            n1 = min(n, n0 + img_step)
            m = n1 - n0
            whole = (n0, n1) == (0, n)
            b, d = (base, diff) if whole else (base[n0:n1], diff[n0:n1])
            col = np.repeat(alphas[s0 : s0 + k], m).astype(np.float32).reshape((k * m,) + (1,) * (len(shape) - 1))
            rows = ops.from_numpy(col, x) * ops.tile_batch(d, k)
            if not zero_base:
                rows = ops.tile_batch(b, k) + rows
            g = bk.gradients(model, rows, target.rows(n0, n1).repeat(k), wrt_input=True, output=output)
            gshape = tuple(ops.shape(g.input_grad))  # (rows, [k targets,] *input)
            wcol = weights[s0 : s0 + k].astype(np.float32).reshape((k,) + (1,) * len(gshape))
            part = ops.sum(ops.reshape(g.input_grad, (k, m) + gshape[1:]) * ops.from_numpy(wcol, x), axis=0)
            totals[ci] = part if totals[ci] is None else totals[ci] + part
    avg = ops.numpy(ops.concat(totals, axis=0)).astype(np.float32)
    scores_np = ops.numpy(scores).astype(np.float32)
    multi = scores_np.ndim == 2
    warn_zero(avg, clean_np, "integrated_gradients", k_axis=multi)
    d = ops.numpy(diff).astype(np.float32)
    attr = (avg * (d[:, None] if multi else d)).astype(np.float32)
    base_scores, _ = target.scores(bk.forward(model, base, output) if base_out is None else base_out, ops)
    sums = attr.reshape(attr.shape[: 2 if multi else 1] + (-1,)).astype(np.float64).sum(-1)
    delta = (sums - (scores_np.astype(np.float64) - ops.numpy(base_scores).astype(np.float64))).astype(np.float32)
    targets = None if idx is None else ops.numpy(idx).astype(np.int64)
    return MethodResult(
        attr, input_heatmaps(bk, model, attr, k_axis=multi), targets, scores_np, clean_np, extras={"delta": delta},
    )
