"""The pointing game (Zhang et al. 2016) and the energy pointing game, against masks or boxes.

Pointing game: a *hit* when the map's maximum lies within ``tolerance`` pixels of the
object (Euclidean distance from the maximum's pixel centre to the nearest mask pixel
centre ``<= tolerance``; 15 in the original benchmark, 0 means on the mask). Of several
equal maxima the first in raster order (row-major, ``np.argmax``) is the one that points.
Accuracy = hits / (hits + misses); an image whose mask is empty is neither (it is
counted in ``skipped``).

Energy pointing game (Wang et al. 2020, Score-CAM): the share of the map's positive mass
inside the mask, ``sum(max(map, 0) * mask) / sum(max(map, 0))`` (an all-zero map scores 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["PointingResult", "boxes_to_masks", "energy_pointing_game", "pointing_game"]


@dataclass
class PointingResult:
    """hits (N,) bool, valid (N,) bool (mask not empty), accuracy over the valid images, skipped count."""

    hits: np.ndarray
    valid: np.ndarray
    accuracy: float
    tolerance: float

    @property
    def skipped(self) -> int:
        return int((~self.valid).sum())


def boxes_to_masks(boxes: Any, height: int, width: int) -> np.ndarray:
    """(N, H, W) bool masks of boxes ``(N, 4)`` = ``(x0, y0, x1, y1)`` in pixels, end exclusive."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise InputError(f"boxes must be (N, 4) as (x0, y0, x1, y1); got shape {b.shape}")
    yy, xx = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    return (
        (xx[None] >= b[:, 0, None, None]) & (xx[None] < b[:, 2, None, None])
        & (yy[None] >= b[:, 1, None, None]) & (yy[None] < b[:, 3, None, None])
    )  # fmt: skip


def _check(maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(maps, dtype=np.float64)
    k = np.asarray(masks)
    if m.ndim != 3:
        raise InputError(f"maps must be (N, H, W) (e.g. exp.heatmaps); got shape {m.shape}")
    if k.ndim == 2 and k.shape[1] == 4 and k.shape != m.shape[1:]:
        k = boxes_to_masks(k, m.shape[1], m.shape[2])
    if k.shape != m.shape:
        raise InputError(f"masks must have the maps' shape {m.shape} (or be (N, 4) boxes); got {k.shape}")
    if not np.all(np.isfinite(m)):
        raise InputError("maps contain NaN or inf values")
    return m, k.astype(bool)


def pointing_game(maps: Any, masks: Any, tolerance: float = 15) -> PointingResult:
    """Hits and accuracy of the pointing game for (N, H, W) maps and (N, H, W) masks (or (N, 4) boxes)."""
    from scipy.ndimage import distance_transform_edt

    if tolerance < 0:
        raise InputError(f"tolerance must be >= 0 pixels; got {tolerance}")
    m, k = _check(maps, masks)
    n, _, w = m.shape
    peak = m.reshape(n, -1).argmax(axis=1)
    r, c = np.divmod(peak, w)
    valid = np.asarray(k.reshape(n, -1).any(axis=1), dtype=bool)
    hits = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(valid):  # one distance transform per mask; cheap next to the maps
        hits[i] = k[i, r[i], c[i]] or (tolerance > 0 and distance_transform_edt(~k[i])[r[i], c[i]] <= tolerance)
    acc = float(hits[valid].mean()) if valid.any() else float("nan")
    return PointingResult(hits=hits, valid=valid, accuracy=acc, tolerance=float(tolerance))


def energy_pointing_game(maps: Any, masks: Any) -> np.ndarray:
    """(N,) share of each map's positive mass inside its mask (in [0, 1])."""
    m, k = _check(maps, masks)
    pos = np.maximum(m, 0.0).reshape(len(m), -1)
    total = pos.sum(axis=1)
    inside = (pos * k.reshape(len(k), -1)).sum(axis=1)
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
