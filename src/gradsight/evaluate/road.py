"""ROAD: RemOve And Debias (Rong et al. 2022), with noisy linear imputation.

For each percentage p (default 10, 20, ..., 90) the top-ranked (MoRF: most relevant
first) or bottom-ranked (LeRF: least relevant first) p% of the pixels (all channels) are
removed and *imputed*: each removed pixel becomes the weighted mean of its 8 neighbours
(1/6 for the four direct ones, 1/12 for the four diagonal ones; neighbours outside the
image are left out and the weights renormalised), solved for all removed pixels of an
image at once as one sparse linear system (``scipy.sparse.linalg.spsolve``, the C
channels as C right-hand sides), plus Gaussian noise of std ``noise`` (0.01, in the
model's input space; 0 turns it off). This is the reference ``NoisyLinearImputer``.

The *drop* at p is the explained class's probability on the original image minus on the
imputed one. ``summary = mean over p of (MoRF drop - LeRF drop) / 2``: positive for a
faithful map (removing what it calls important hurts more than removing the rest).
Pixels are ranked as everywhere in :mod:`gradsight.evaluate` (ties by raster order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ._common import (
    as_numpy,
    channel_axis,
    class_scores,
    image_shape,
    maps_of,
    pixel_ranks,
    targets_of,
)

__all__ = ["RoadResult", "impute", "road"]

NEIGHBOURS = (
    ((0, 1), 1 / 6), ((0, -1), 1 / 6), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
    ((1, 1), 1 / 12), ((1, -1), 1 / 12), ((-1, 1), 1 / 12), ((-1, -1), 1 / 12),
)  # fmt: skip


@dataclass
class RoadResult:
    """percentages (P,); morf, lerf: (N, P) probability drops; base (N,) original score; summary (N,)."""

    percentages: np.ndarray
    morf: np.ndarray
    lerf: np.ndarray
    base: np.ndarray
    summary: np.ndarray
    targets: np.ndarray


def impute(image: np.ndarray, removed: np.ndarray, noise: float = 0.01, rng: Any = None) -> np.ndarray:
    """Noisy linear imputation of one channels-first image (C, H, W) where ``removed`` (H, W) is True."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    gone = removed.reshape(-1)
    idx = np.flatnonzero(gone)
    flat = image.reshape(c, -1).astype(np.float64)
    out = flat.copy()
    m = idx.size
    if m == 0:
        return image.copy()
    if m == gone.size:
        raise InputError("cannot impute an image with every pixel removed (no neighbour is known)")
    var = np.full(gone.size, -1)
    var[idx] = np.arange(m)
    r, col = np.divmod(idx, w)
    rows, cols, vals = [], [], []
    diag = np.zeros(m)
    b = np.zeros((m, c))
    eq = np.arange(m)
    for (dr, dc), wt in NEIGHBOURS:
        rr, cc = r + dr, col + dc
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        nb = np.where(ok, rr * w + cc, 0)
        diag[ok] += wt
        unknown = ok & gone[nb]
        known = ok & ~gone[nb]
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), wt))
        b[known] -= wt * flat[:, nb[known]].T
    rows.append(eq)
    cols.append(eq)
    vals.append(-diag)
    a = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))
    sol = np.asarray(spsolve(a, b)).reshape(m, c)
    out[:, idx] = sol.T
    if noise:
        out[:, idx] += noise * (rng if rng is not None else np.random.default_rng()).standard_normal((c, m))
    return out.reshape(image.shape).astype(image.dtype)


def road(
    model: Any,
    x: Any,
    explanation: Any,
    target: Any = None,
    *,
    percentages: Sequence[float] = tuple(range(10, 100, 10)),
    noise: float = 0.01,
    seed: int = 0,
    prob: bool = True,
    batch_size: int = 64,
    explain_options: dict[str, Any] | None = None,
    **predict_options: Any,
) -> RoadResult:
    """ROAD MoRF and LeRF probability drops and their combined summary, per image.

    ``explanation``, ``target``, ``prob``, ``batch_size`` as in
    :func:`~gradsight.evaluate.deletion`. ``seed`` makes the imputation noise reproducible
    (image i, percentage j, order k use ``default_rng([seed, i, j, k])``).
    """
    from ..api import predict

    x = as_numpy(x)
    axis = channel_axis(model)
    pct = np.asarray(percentages, dtype=np.float64)
    if pct.ndim != 1 or pct.size == 0 or np.any((pct <= 0) | (pct >= 100)):
        raise InputError(f"percentages must be numbers strictly between 0 and 100; got {list(percentages)}")
    maps, exp = maps_of(model, x, explanation, target, explain_options)
    base_out = predict(model, x, batch_size=batch_size, **predict_options)
    targets = targets_of(target, exp, base_out)
    base = class_scores(base_out, targets, prob)
    ranks = pixel_ranks(maps)
    n = len(x)
    h, w = image_shape(x, axis)
    hw = h * w
    counts = np.rint(pct / 100 * hw).astype(int)

    def images() -> Iterator[np.ndarray]:
        for i in range(n):
            img = np.moveaxis(x[i], axis - 1, 0)  # channels first for the imputer
            for j, k in enumerate(counts):
                for o, removed in enumerate((ranks[i] < k, ranks[i] >= hw - k)):  # MoRF, LeRF
                    rng = np.random.default_rng([seed, i, j, o])
                    yield np.moveaxis(impute(img, removed.reshape(h, w), noise, rng), 0, axis - 1)

    total = n * len(counts) * 2
    scores = np.empty(total)
    owner = np.repeat(np.arange(n), len(counts) * 2)
    gen = images()
    for b0 in range(0, total, batch_size):
        b1 = min(total, b0 + batch_size)
        batch = np.stack([next(gen) for _ in range(b1 - b0)])
        scores[b0:b1] = class_scores(predict(model, batch, **predict_options), targets[owner[b0:b1]], prob)
    per = scores.reshape(n, len(counts), 2)
    morf = base[:, None] - per[..., 0]
    lerf = base[:, None] - per[..., 1]
    return RoadResult(pct, morf, lerf, base, ((morf - lerf) / 2).mean(axis=1), targets)
