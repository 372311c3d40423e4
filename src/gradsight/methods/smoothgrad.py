"""SmoothGrad (Smilkov et al. 2017): a gradient method averaged over noisy copies."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import UnknownOptionError
from ..rules import RULES
from ..targets import Target
from ._common import MethodResult, input_heatmaps, outputs_numpy, warn_zero

BASES = {"saliency": None, "deconvnet": RULES["deconvnet"], "guided_backprop": RULES["guided"]}


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
    output: Any = None,
) -> MethodResult:
    """Mean of ``base`` over ``samples`` copies x + N(0, sigma^2), sigma = noise * (max x - min x).

    Copies run in mini-batches of at most ``batch_size`` rows, so peak memory does not
    grow with ``samples``. The noise for copy ``s`` comes from ``seed`` and ``s`` only
    (channels-first order), so results do not depend on ``batch_size`` or the framework.
    What the target chooses from the outputs (top-1 / top-k classes, predicted pixels,
    detection cells) is chosen once, on the clean input.
    """
    if base not in BASES:
        raise UnknownOptionError(f"base={base!r} is not valid; use one of {sorted(BASES)}.")
    if not (isinstance(samples, int) and samples >= 1):
        raise UnknownOptionError(f"samples must be a positive int, got {samples!r}.")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise UnknownOptionError(f"batch_size must be a positive int, got {batch_size!r}.")
    if not noise >= 0:
        raise UnknownOptionError(f"noise must be >= 0 (a fraction of each input's value range), got {noise!r}.")
    ops, rule = bk.ops, BASES[base]
    shape = tuple(ops.shape(x))
    n = shape[0]

    clean = bk.forward(model, x, output)
    scores, idx = target.scores(clean, ops)
    clean_np = outputs_numpy(bk, clean)
    # The clean input's classes (pixels, cells) for every copy.
    target = target.fixed(clean_np, ops, None if idx is None else ops.numpy(idx))

    xn = ops.numpy(x).reshape(n, -1)
    sigma = (noise * (xn.max(1) - xn.min(1))).astype(np.float32)
    channels_last = len(shape) == 4 and bk.input_layout(model) == "channels_last"
    canonical = (n, shape[3], shape[1], shape[2]) if channels_last else shape
    root = int(seed) if seed is not None else int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]

    def noise_for(s: int) -> np.ndarray:
        eps = np.random.default_rng([root, s]).standard_normal(canonical, dtype=np.float32)
        if channels_last:
            eps = eps.transpose(0, 2, 3, 1)
        scaled: np.ndarray = eps * sigma.reshape((n,) + (1,) * (len(shape) - 1))
        return scaled

    per_chunk = max(1, batch_size // n)  # copies of the whole batch per pass
    img_step = min(n, batch_size)
    totals: list[Any] = [None] * ((n + img_step - 1) // img_step)
    for s0 in range(0, samples, per_chunk):
        k = min(per_chunk, samples - s0)
        eps = np.stack([noise_for(s) for s in range(s0, s0 + k)])  # (k, n, ...)
        for ci, n0 in enumerate(range(0, n, img_step)):
            n1 = min(n, n0 + img_step)
            part = x if (n0, n1) == (0, n) else x[n0:n1]
            rows = ops.tile_batch(part, k) + ops.from_numpy(eps[:, n0:n1].reshape((k * (n1 - n0),) + shape[1:]), x)
            t = target.rows(n0, n1).repeat(k)
            g = bk.gradients(model, rows, t, rule=rule, wrt_input=True, output=output)
            gshape = tuple(ops.shape(g.input_grad))  # (rows, [k targets,] *input)
            part_sum = ops.sum(ops.reshape(g.input_grad, (k, n1 - n0) + gshape[1:]), axis=0)
            totals[ci] = part_sum if totals[ci] is None else totals[ci] + part_sum
    attr = (ops.numpy(ops.concat(totals, axis=0)) / samples).astype(np.float32)
    scores_np = ops.numpy(scores).astype(np.float32)
    multi = scores_np.ndim == 2
    warn_zero(attr, clean_np, f"smoothgrad({base})", k_axis=multi)
    targets = ops.numpy(idx).astype(np.int64) if idx is not None else None
    return MethodResult(attr, input_heatmaps(bk, model, attr, k_axis=multi), targets, scores_np, clean_np)
