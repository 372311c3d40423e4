"""The shapes benchmark for detection: several labelled shapes per image, each with its box.

The same drawing as :mod:`gradsight.demo.shapes` (textured backgrounds, distractors,
circles, squares, triangles, stars and crosses at random sizes, rotations and colours),
with one to ``max_objects`` shapes per image whose circumscribed circles do not
overlap. Each shape's box is the tight box of its pixels (coverage >= 0.5).

Images are fully determined by ``(seed, index, size, max_objects)``.

Examples
--------
>>> from gradsight.demo.shapes_detect import generate
>>> data = generate(4, seed=0)
>>> data.images.shape, data.boxes[0].shape      # (4, 64, 64, 3), (m, 4) x1 y1 x2 y2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .shapes import _MIN_CONTRAST, CLASSES, _add_distractors, _background, _composite, _render, _target_drawer

__all__ = ["CLASSES", "IMAGE_SIZE", "DetectionData", "generate"]

IMAGE_SIZE = 64
"""Default side of the generated images, in pixels (the demo detector's input size)."""

_SALT = 0xD37EC7  # keeps these images apart from the classification set's for the same seed


@dataclass(frozen=True)
class DetectionData:
    """A batch of generated detection images.

    Attributes
    ----------
    images : uint8 (N, H, W, 3), RGB.
    boxes : list of N float32 arrays (m_i, 4), ``(x1, y1, x2, y2)`` in pixels (x2, y2 exclusive).
    labels : list of N int64 arrays (m_i,), indices into :data:`CLASSES`.
    label_map : int8 (N, H, W): each pixel's shape class, -1 for the background.
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    label_map: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def _one_image(seed: int, index: int, size: int, max_objects: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index, _SALT])
    img = _background(rng, size)
    _add_distractors(img, rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    placed: list[tuple[float, float, float]] = []
    boxes, labels = [], []
    label_map = np.full((size, size), -1, np.int8)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(CLASSES)))
        r = float(rng.uniform(0.1, 0.2) * size)
        margin = r + 0.03 * size
        for _try in range(30):  # a place whose circle does not touch the others'
            cx, cy = (float(v) for v in rng.uniform(margin, size - margin, 2))
            if all(math.hypot(cx - px, cy - py) >= r + pr + 1.0 for px, py, pr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        alpha = _render(size, _target_drawer(label, cx, cy, r, float(rng.uniform(0, 2 * math.pi))))
        mask = alpha >= 0.5
        if not mask.any():
            continue
        under = img[mask].mean(axis=0)
        cands = rng.uniform(0, 255, (12, 3))
        dist = np.linalg.norm(cands - under, axis=1)
        ok = np.flatnonzero(dist >= _MIN_CONTRAST)
        colour = cands[ok[0]] if ok.size else cands[int(np.argmax(dist))]
        gx, gy = rng.uniform(-20, 20, 2) / r
        shade = (gx * (xx - cx) + gy * (yy - cy))[..., None]
        _composite(img, alpha, np.clip(colour + shade, 0, 255))
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        labels.append(label)
        label_map[mask] = label
    img += rng.normal(0, rng.uniform(1.0, 7.0), img.shape)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64), label_map


def generate(n: int, seed: int = 0, size: int = IMAGE_SIZE, max_objects: int = 4) -> DetectionData:
    """Generate ``n`` images with 1..``max_objects`` shapes each, their boxes and labels.

    Parameters
    ----------
    n : number of images (>= 0).
    seed : non-negative seed; image ``i`` depends only on ``(seed, i, size, max_objects)``.
    size : side in pixels (>= 32). The demo detector expects 64.
    max_objects : at most this many shapes per image (>= 1).
    """
    n, seed, size, max_objects = int(n), int(seed), int(size), int(max_objects)
    if n < 0 or seed < 0 or size < 32 or max_objects < 1:
        raise ValueError(f"need n >= 0, seed >= 0, size >= 32 and max_objects >= 1; got {n}, {seed}, {size}, {max_objects}.")
    images = np.empty((n, size, size, 3), np.uint8)
    label_map = np.empty((n, size, size), np.int8)
    boxes, labels = [], []
    for i in range(n):
        images[i], b, k, label_map[i] = _one_image(seed, i, size, max_objects)
        boxes.append(b)
        labels.append(k)
    return DetectionData(images, boxes, labels, label_map)
