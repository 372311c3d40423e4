"""SmoothGrad (Smilkov et al. 2017): a gradient method averaged over noisy copies."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _progress
from ..backends.base import Backend
from ..errors import UnknownOptionError
from ..rules import RULES
from ..targets import Target
from ._common import MethodResult, input_heatmaps, pinned_target, positive_int, sample_range, warn_zero
from ._layout import input_kind

BASES = {
    "saliency": None, "deconvnet": RULES["deconvnet"], "guided_backprop": RULES["guided"], "input_x_gradient": None,
    "integrated_gradients": None,
}
AGGREGATES = ("mean", "mean_square", "var")


def smoothgrad(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    samples: int = 50,
    noise: float = 0.15,
    batch_size: int = 32,
    seed: int | None = None,
    base: str = "saliency",
    aggregate: str = "mean",
    base_options: dict[str, Any] | None = None,
    output: Any = None,
) -> MethodResult:
    """``aggregate`` of ``base`` over ``samples`` copies x + N(0, sigma^2), sigma = noise * (max x - min x).

    ``base``: ``saliency``, ``deconvnet``, ``guided_backprop``, ``input_x_gradient`` (the
    noisy copy times its gradient) or ``integrated_gradients`` (of each noisy copy, with
    ``base_options`` such as ``steps``, ``rule``, ``baseline``). ``aggregate``: ``"mean"``
    (SmoothGrad), ``"mean_square"`` (the mean of squares, SmoothGrad^2) or ``"var"``
    (VarGrad: the population variance, divided by ``samples``).

    Copies run in mini-batches of at most ``batch_size`` rows, so peak memory does not
    grow with ``samples``; they keep the input's memory layout (a channels-last torch
    tensor stays channels-last). The noise for copy ``s`` comes from ``seed`` and ``s``
    only (numpy's generator, channels-first order), so results do not depend on
    ``batch_size`` or the framework. Several inputs (``x`` a tuple): every input gets noise,
    sigma = ``noise`` x that input's own range, drawn over the inputs flattened in order (in
    the model's layout, so for channels-last images it depends on the framework). What the target chooses from the outputs (top-1 /
    top-k classes, predicted pixels, detection cells) is chosen once, on the clean input.
    """
    if base not in BASES:
        raise UnknownOptionError(f"base={base!r} is not valid; use one of {sorted(BASES)}.")
    if aggregate not in AGGREGATES:
        raise UnknownOptionError(f"aggregate={aggregate!r} is not valid; use one of {list(AGGREGATES)}.")
    if base_options and base != "integrated_gradients":
        raise UnknownOptionError(f"base_options are for base='integrated_gradients'; base={base!r} takes none.")
    positive_int("samples", samples)
    positive_int("batch_size", batch_size)
    if not noise >= 0:
        raise UnknownOptionError(f"noise must be >= 0 (a fraction of each input's value range), got {noise!r}.")
    ops, rule = bk.ops, BASES[base]
    shape = tuple(ops.shape(x))
    n = shape[0]

    # The clean input's classes (pixels, cells) for every copy.
    scores, idx, clean_np, target = pinned_target(bk, bk.forward(model, x, output), target)

    sigma = (noise * sample_range(bk, ops.numpy(x))).astype(np.float32)  # (N, 1, ...); several inputs: per input
    kind = input_kind(bk, model, shape)  # channels-last signals, images, volumes: noise drawn channels first
    channels_last = kind.channel_axis is not None and kind.channel_axis == len(shape) - 1
    canonical = (n, shape[-1]) + shape[1:-1] if channels_last else shape
    root = int(seed) if seed is not None else int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]

    def noise_for(s: int) -> np.ndarray:
        eps = np.random.default_rng([root, s]).standard_normal(canonical, dtype=np.float32)
        if channels_last:
            eps = np.moveaxis(eps, 1, -1)
        scaled: np.ndarray = eps * sigma
        return scaled

    def noise_block(s0: int, k: int) -> np.ndarray:
        """``np.stack([noise_for(s) for s in range(s0, s0 + k)])``, the same numbers, drawn into one
        buffer and scaled there (no per-copy arrays, no stacking copy)."""
        eps = np.empty((k,) + canonical, np.float32)
        for j in range(k):
            np.random.default_rng([root, s0 + j]).standard_normal(dtype=np.float32, out=eps[j])
        if channels_last:
            return np.moveaxis(eps, 2, -1) * sigma  # a new array, in the input's layout
        np.multiply(eps, sigma, out=eps)
        return eps

    acc = _Sums(ops, aggregate)
    if base == "integrated_gradients":
        from .integrated_gradients import integrated_gradients

        opts = dict({"batch_size": batch_size}, **(base_options or {}))
        for s in range(samples):
            noisy = x + ops.from_numpy(noise_for(s), x)
            acc.add(0, integrated_gradients(bk, model, noisy, target, output=output, **opts).attributions[None])
            _progress.report("smoothgrad samples", s + 1, samples)
        return _result(bk, model, acc, samples, scores, idx, clean_np, base)

    per_chunk = max(1, batch_size // n)  # copies of the whole batch per pass
    img_step = min(n, batch_size)
    for s0 in range(0, samples, per_chunk):
        k = min(per_chunk, samples - s0)
        eps = noise_block(s0, k)  # (k, n, ...): noise_for(s) for each s, drawn in place
        for ci, n0 in enumerate(range(0, n, img_step)):
            n1 = min(n, n0 + img_step)
            part = x if (n0, n1) == (0, n) else x[n0:n1]
            rows = ops.tiled_plus(eps[:, n0:n1].reshape((k * (n1 - n0),) + shape[1:]), part, k)  # eps is scratch
            t = target.rows(n0, n1).repeat(k)
            g = bk.gradients(model, rows, t, rule=rule, wrt_input=True, output=output)
            gshape = tuple(ops.shape(g.input_grad))  # (rows, [k targets,] *input)
            grad = g.input_grad
            if base == "input_x_gradient":
                grad = grad * (ops.reshape(rows, (gshape[0], 1) + gshape[2:]) if len(gshape) > len(shape) else rows)
            acc.add(ci, ops.reshape(grad, (k, n1 - n0) + gshape[1:]))
        _progress.report("smoothgrad samples", s0 + k, samples)  # the CLI's bar for long runs
    return _result(bk, model, acc, samples, scores, idx, clean_np, base)


class _Sums:
    """Running sums over the copies, per image chunk: on the device for the means, float64 for ``var``."""

    def __init__(self, ops: Any, aggregate: str) -> None:
        self.ops, self.aggregate = ops, aggregate
        self.first: dict[int, Any] = {}
        self.second: dict[int, Any] = {}

    def add(self, ci: int, part: Any) -> None:
        """``part`` (k copies, rows, ...): a tensor, or numpy."""
        ops = self.ops
        if self.aggregate == "var" or isinstance(part, np.ndarray):
            a = (part if isinstance(part, np.ndarray) else ops.numpy(part)).astype(np.float64)
            self.first[ci] = self.first.get(ci, 0.0) + a.sum(0)
            self.second[ci] = self.second.get(ci, 0.0) + (a * a).sum(0)
            return
        s = ops.sum(part * part if self.aggregate == "mean_square" else part, axis=0)
        self.first[ci] = s if ci not in self.first else self.first[ci] + s

    def result(self, samples: int) -> np.ndarray:
        def join(d: dict[int, Any]) -> np.ndarray:
            parts = [d[i] for i in sorted(d)]
            if isinstance(parts[0], np.ndarray):
                return np.concatenate(parts, axis=0)
            return np.asarray(self.ops.numpy(self.ops.concat(parts, axis=0)), dtype=np.float64)

        if self.aggregate == "mean" or not self.second:
            return join(self.first) / samples
        mean, square = join(self.first) / samples, join(self.second) / samples
        if self.aggregate == "mean_square":
            return square
        return np.maximum(square - mean * mean, 0.0)


def _result(
    bk: Backend, model: Any, acc: _Sums, samples: int, scores: Any, idx: Any, clean_np: Any, base: str
) -> MethodResult:
    ops = bk.ops
    attr = acc.result(samples).astype(np.float32)
    scores_np = ops.numpy(scores).astype(np.float32)
    multi = scores_np.ndim == 2
    warn_zero(attr, clean_np, f"smoothgrad({base})", k_axis=multi)
    targets = ops.numpy(idx).astype(np.int64) if idx is not None else None
    return MethodResult(attr, input_heatmaps(bk, model, attr, k_axis=multi), targets, scores_np, clean_np)
