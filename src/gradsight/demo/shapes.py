"""The shapes benchmark: generated RGB images of one labelled shape with its pixel mask.

Every image shows exactly one *target* shape -- a circle, square, triangle, star or
cross -- at a random position, size, rotation and colour, drawn on a textured
background (smooth colour noise, gradients or stripes) over distractors that are not
one of the classes (thin lines, small dots, faint blurred elongated blobs). The mask
holds the target's pixels, so attributions can be scored against ground truth.

Only numpy and Pillow are used. Images are fully determined by ``(seed, index,
size)``: image ``i`` is drawn from ``np.random.default_rng([seed, i])``, so
``generate(n, seed)`` is a prefix of ``generate(m, seed)`` for ``m > n``.

Examples
--------
>>> from gradsight.demo.shapes import generate, preprocess, CLASSES
>>> data = generate(8, seed=0)
>>> data.images.shape, data.images.dtype
((8, 64, 64, 3), dtype('uint8'))
>>> x = preprocess(data.images)  # float32 (8, 3, 64, 64), ready for ShapesNet
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..inputs import DEMO_MEAN, DEMO_STD
from ..inputs import preprocess as _preprocess

__all__ = [
    "CLASSES",
    "IMAGE_SIZE",
    "MEAN",
    "STD",
    "ShapesData",
    "generate",
    "image_at",
    "preprocess",
]

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
"""Class names; a label ``k`` means ``CLASSES[k]``."""

IMAGE_SIZE: int = 64
"""Default side length of the generated images, in pixels."""

MEAN: np.ndarray = DEMO_MEAN
"""Per-channel (R, G, B) mean of the generated images on the 0-1 scale (measured on ``generate(3000, seed=7)``)."""

STD: np.ndarray = DEMO_STD
"""Per-channel (R, G, B) standard deviation of the generated images on the 0-1 scale."""

_SS = 4  # supersampling factor used to anti-alias the drawn layers
_MIN_CONTRAST = 110.0  # minimum RGB distance between the target and the background


@dataclass(frozen=True)
class ShapesData:
    """A batch of generated shapes images.

    Attributes
    ----------
    images : np.ndarray
        ``uint8`` array of shape ``(N, H, W, 3)``, RGB.
    labels : np.ndarray
        ``int64`` array of shape ``(N,)``, indices into :data:`CLASSES`.
    masks : np.ndarray
        ``bool`` array of shape ``(N, H, W)``, the pixels of the labelled shape.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> ShapesData:
        """Select images; an integer index keeps the batch axis (a batch of one)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return ShapesData(self.images[index], self.labels[index], self.masks[index])


# --------------------------------------------------------------------------- drawing


def _render(size: int, draw: Callable[[ImageDraw.ImageDraw], None], blur: float = 0.0) -> np.ndarray:
    """Draw white on black at ``_SS`` times the resolution; return the coverage in [0, 1]."""
    hi = Image.new("L", (size * _SS, size * _SS), 0)
    draw(ImageDraw.Draw(hi))
    lo = hi.resize((size, size), Image.Resampling.BOX)
    if blur > 0:
        lo = lo.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(lo, dtype=np.float32) / 255.0


def _hi(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Map continuous image coordinates (pixel ``j`` spans ``[j, j+1)``) to the supersampled grid."""
    return [(x * _SS - 0.5, y * _SS - 0.5) for x, y in points]


def _composite(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-blend ``colour`` (``(3,)`` or ``(H, W, 3)``) into ``img`` in place."""
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * colour


def _upsample(low: np.ndarray, size: int) -> np.ndarray:
    """Bicubic upsampling of a small ``(h, w, C)`` float grid to ``(size, size, C)``."""
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(low[..., c], dtype=np.float32), mode="F").resize(
                (size, size), Image.Resampling.BICUBIC
            ),
            dtype=np.float32,
        )
        for c in range(low.shape[-1])
    ]
    return np.stack(chans, axis=-1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background, float32 ``(size, size, 3)`` on the 0-255 scale."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    kind = int(rng.integers(4))
    if kind == 0:  # smooth colour noise
        g = int(rng.integers(2, 7))
        bg = _upsample(rng.uniform(0, 255, (g, g, 3)), size)
    elif kind == 1:  # linear gradient between two colours
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        ang = rng.uniform(0, 2 * math.pi)
        proj = (xx - size / 2) * math.cos(ang) + (yy - size / 2) * math.sin(ang)
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
        bg = c0 + t[..., None] * (c1 - c0)
    elif kind == 2:  # stripes (sine or square wave) of moderate contrast
        c0 = rng.uniform(30, 225, 3)
        c1 = np.clip(c0 + rng.normal(0, 45, 3), 0, 255)
        ang = rng.uniform(0, math.pi)
        period = rng.uniform(4, 16)
        phase = rng.uniform(0, 2 * math.pi)
        proj = xx * math.cos(ang) + yy * math.sin(ang)
        wave = np.sin(2 * math.pi * proj / period + phase)
        if rng.random() < 0.5:
            wave = np.sign(wave)
        bg = c0 + (0.5 + 0.5 * wave)[..., None] * (c1 - c0)
    else:  # flat colour
        bg = np.broadcast_to(rng.uniform(0, 255, 3), (size, size, 3))
    bg = bg.astype(np.float32)
    # a little low-frequency variation on top of every kind
    g = int(rng.integers(3, 9))
    bg = bg + _upsample(rng.normal(0, rng.uniform(0, 25), (g, g, 3)), size)
    return np.clip(bg, 0, 255).astype(np.float32)


def _ellipse_points(cx: float, cy: float, a: float, b: float, ang: float, n: int = 32) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    ca, sa = math.cos(ang), math.sin(ang)
    return [(cx + xi * ca - yi * sa, cy + xi * sa + yi * ca) for xi, yi in zip(x, y)]


def _add_distractors(img: np.ndarray, rng: np.random.Generator, size: int) -> None:
    """Faint elongated blobs, thin lines and small dots -- none of them a class shape."""
    s = size / IMAGE_SIZE
    for _ in range(int(rng.integers(0, 3))):  # faint blurred elongated blobs
        a = rng.uniform(5, 14) * s
        b = a * rng.uniform(0.2, 0.45)
        pts = _ellipse_points(rng.uniform(0, size), rng.uniform(0, size), a, b, rng.uniform(0, math.pi))
        alpha = _render(size, lambda d, p=pts: d.polygon(_hi(p), fill=255), blur=rng.uniform(1.5, 3.0) * s)  # type: ignore[misc]
        _composite(img, alpha * rng.uniform(0.2, 0.45), rng.uniform(0, 255, 3))
    for _ in range(int(rng.integers(1, 5))):  # thin straight or gently bent lines
        (x0, y0), (x1, y1) = rng.uniform(-4, size + 4, (2, 2))
        pts = [(float(x0), float(y0)), (float(x1), float(y1))]
        if rng.random() < 0.4:  # bend it gently at the middle (an obtuse angle, never a shape corner)
            bend = rng.uniform(-0.3, 0.3)
            pts.insert(1, (float((x0 + x1) / 2 - bend * (y1 - y0)), float((y0 + y1) / 2 + bend * (x1 - x0))))
        width = max(1, round(_SS * rng.uniform(0.6, 1.3) * s))
        alpha = _render(size, lambda d, p=pts, w=width: d.line(_hi(p), fill=255, width=w, joint="curve"))  # type: ignore[misc]
        _composite(img, alpha * rng.uniform(0.5, 1.0), rng.uniform(0, 255, 3))
    for _ in range(int(rng.integers(0, 9))):  # small dots / specks
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.5, 1.6) * s
        alpha = _render(
            size,
            lambda d, c=(cx, cy), rr=r: d.ellipse(  # type: ignore[misc]
                [(c[0] - rr) * _SS, (c[1] - rr) * _SS, (c[0] + rr) * _SS - 1, (c[1] + rr) * _SS - 1], fill=255
            ),
        )
        _composite(img, alpha, rng.uniform(0, 255, 3))


def _regular(cx: float, cy: float, radii: list[float], theta: float) -> list[tuple[float, float]]:
    """Polygon with vertices at equally spaced angles and the given distances from the centre."""
    n = len(radii)
    return [
        (cx + r * math.cos(theta + 2 * math.pi * k / n), cy + r * math.sin(theta + 2 * math.pi * k / n))
        for k, r in enumerate(radii)
    ]


def _target_drawer(label: int, cx: float, cy: float, r: float, theta: float) -> Callable[[ImageDraw.ImageDraw], None]:
    """The drawing call of a class shape of extent ``r`` (about its circumradius)."""
    name = CLASSES[label]
    if name == "circle":
        rc = 0.85 * r
        box = [(cx - rc) * _SS, (cy - rc) * _SS, (cx + rc) * _SS - 1, (cy + rc) * _SS - 1]
        return lambda d: d.ellipse(box, fill=255)
    if name == "square":
        pts = _regular(cx, cy, [r] * 4, theta)
    elif name == "triangle":
        pts = _regular(cx, cy, [1.05 * r] * 3, theta)
    elif name == "star":
        pts = _regular(cx, cy, [1.05 * r, 0.45 * r] * 5, theta)
    elif name == "cross":
        w, L = 0.3 * r, 0.95 * r  # arm half-width and reach
        base = [(w, L), (w, w), (L, w), (L, -w), (w, -w), (w, -L),
                (-w, -L), (-w, -w), (-L, -w), (-L, w), (-w, w), (-w, L)]  # fmt: skip
        ct, st = math.cos(theta), math.sin(theta)
        pts = [(cx + x * ct - y * st, cy + x * st + y * ct) for x, y in base]
    else:  # pragma: no cover - CLASSES and this function must agree
        raise AssertionError(name)
    hi = _hi(pts)
    return lambda d: d.polygon(hi, fill=255)


def _one_image(seed: int, index: int, size: int) -> tuple[np.ndarray, int, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(CLASSES)))
    img = _background(rng, size)
    _add_distractors(img, rng, size)

    r = rng.uniform(0.15, 0.31) * size
    margin = r + 0.04 * size
    cx, cy = rng.uniform(margin, size - margin, 2)
    theta = rng.uniform(0, 2 * math.pi)
    alpha = _render(size, _target_drawer(label, float(cx), float(cy), float(r), float(theta)))
    mask = alpha >= 0.5

    # a colour that stands out from what lies under the shape
    under = img[mask].mean(axis=0)
    cands = rng.uniform(0, 255, (12, 3))
    dist = np.linalg.norm(cands - under, axis=1)
    ok = np.flatnonzero(dist >= _MIN_CONTRAST)
    colour = cands[ok[0]] if ok.size else cands[int(np.argmax(dist))]
    # gentle linear shading across the shape
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    gx, gy = rng.uniform(-20, 20, 2) / r
    shade = (gx * (xx - cx) + gy * (yy - cy))[..., None]
    _composite(img, alpha, np.clip(colour + shade, 0, 255))

    img += rng.normal(0, rng.uniform(1.0, 7.0), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label, mask


# --------------------------------------------------------------------------- public API


def generate(n: int, seed: int = 0, size: int = IMAGE_SIZE) -> ShapesData:
    """Generate ``n`` shapes images with labels and ground-truth masks.

    Parameters
    ----------
    n : int
        Number of images (``>= 0``).
    seed : int, default 0
        Non-negative seed. Image ``i`` depends only on ``(seed, i, size)``, so a
        smaller ``n`` gives a prefix of a larger one.
    size : int, default 64
        Side length in pixels (``>= 16``). The demo model expects 64.

    Returns
    -------
    ShapesData
        ``images`` uint8 ``(n, size, size, 3)``, ``labels`` int64 ``(n,)`` and
        ``masks`` bool ``(n, size, size)``.
    """
    n, seed, size = int(n), int(seed), int(size)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}.")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}.")
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int64)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        images[i], labels[i], masks[i] = _one_image(seed, i, size)
    return ShapesData(images=images, labels=labels, masks=masks)


def image_at(index: int, seed: int = 0, size: int = IMAGE_SIZE) -> tuple[np.ndarray, int]:
    """Image ``index`` of ``generate(n, seed, size)`` alone, for any ``n > index``: (uint8 (size, size, 3), label).

    Lets a data set of any length be streamed one image at a time.
    """
    image, label, _ = _one_image(int(seed), int(index), int(size))
    return image, label


def preprocess(images: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    """Normalise uint8 RGB images for the demo model: ``(x / 255 - MEAN) / STD``.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W, 3)`` batch or a single ``(H, W, 3)`` image, values 0-255
        (normally uint8).
    layout : {"NCHW", "NHWC"}, default "NCHW"
        Output layout: channels first (PyTorch) or channels last (Keras). A single
        image keeps its rank: ``(3, H, W)`` or ``(H, W, 3)``.

    Returns
    -------
    np.ndarray
        float32 array in the requested layout.

    This is :func:`gradsight.inputs.preprocess` with ``name="demo"``.
    """
    return _preprocess(images, "demo", layout)
