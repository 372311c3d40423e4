"""Hidden units of a network on 2-D inputs: each unit's line w.x + b = 0 over the decision regions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import backend_for
from ..errors import InputError, ModelError
from ._embed import class_colours, figure_to_image
from ._layers import session

__all__ = ["UnitLine", "unit_lines", "hidden_units"]

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class UnitLine:
    """Hidden unit ``j`` of the first layer, ``a_j = w . x + b``, drawn as the line ``a_j = 0``.

    Attributes
    ----------
    unit: index ``j`` of the hidden unit.
    weight: ``(2,)`` the unit's weights ``w``.
    bias: the unit's bias ``b``.
    segment: ``(2, 2)`` the line's two end points inside the bounds, or None when the
        line misses them (or ``w`` is zero).
    arrow: ``(2, 2)`` start and tip of an arrow along ``w`` from the line (towards
        ``w . x + b > 0``, where a ReLU unit is active), or None with ``segment``.
    """

    unit: int
    weight: np.ndarray
    bias: float
    segment: np.ndarray | None
    arrow: np.ndarray | None


def _clip_line(w: np.ndarray, b: float, bounds: Bounds) -> np.ndarray | None:
    """End points of ``{x : w . x + b = 0}`` inside the box (Liang-Barsky), or None."""
    nrm = float(np.hypot(*w))
    if nrm == 0:
        return None
    p0 = -b * w / nrm**2  # the line's point closest to the origin
    d = np.array([-w[1], w[0]]) / nrm
    x0, x1, y0, y1 = bounds
    lo, hi = -np.inf, np.inf
    for p, dk, a, z in ((p0[0], d[0], x0, x1), (p0[1], d[1], y0, y1)):
        if abs(dk) < 1e-12:
            if not a <= p <= z:
                return None
            continue
        t1, t2 = sorted(((a - p) / dk, (z - p) / dk))
        lo, hi = max(lo, t1), min(hi, t2)
    if lo >= hi:
        return None
    return np.stack([p0 + lo * d, p0 + hi * d])


def _first_dense(model: Any) -> tuple[Any, str, np.ndarray, np.ndarray]:
    bk = backend_for(model)
    dense = bk.dense_layers(model)
    params = bk.weights(model)
    if not params:
        raise ModelError(f"this {type(model).__name__} has no weights; hidden_units needs a first dense layer from R^2.")
    first = params[0][0]
    if not dense or dense[0][0] != first:
        raise ModelError(
            f"the first layer with weights is {first!r}, not a dense (Linear/Dense) layer; hidden_units draws "
            "networks whose first layer is a linear map from R^2, such as Linear(2, h) - ReLU - Linear(h, 2)."
        )
    w, b = bk.dense_params(dense[0][1])
    if w.shape[1] != 2:
        raise ModelError(
            f"the first layer {first!r} maps R^{w.shape[1]} to R^{w.shape[0]}; hidden_units draws lines in the plane, "
            "so it needs a first layer with 2 inputs (Linear(2, h) / Dense on (N, 2) points)."
        )
    return bk, first, w, b


def unit_lines(model: Any, bounds: Bounds) -> list[UnitLine]:
    """The first layer's hidden units as lines clipped to ``bounds = (xmin, xmax, ymin, ymax)``.

    Each arrow starts on the segment, near the centre of the bounds but away from the
    other arrows, and is 8% of the bounds' diagonal long.
    """
    _, _, w, b = _first_dense(model)
    return _lines(w, b, bounds)


def _lines(w: np.ndarray, b: np.ndarray, bounds: Bounds) -> list[UnitLine]:
    x0, x1, y0, y1 = bounds
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    diag = float(np.hypot(x1 - x0, y1 - y0))
    placed: list[np.ndarray] = []
    out = []
    for j in range(len(w)):
        wj, bj = w[j].astype(np.float64), float(b[j])
        seg = _clip_line(wj, bj, bounds)
        arrow = None
        if seg is not None:
            d = seg[1] - seg[0]
            near = float(np.clip(np.dot(centre - seg[0], d) / max(np.dot(d, d), 1e-300), 0.15, 0.85))
            # Start near the centre, sliding along the line away from arrows already placed,
            # so that labels of lines crossing near the centre do not pile up.
            tries = [near] + [t for k in range(1, 8) for t in (near - 0.1 * k, near + 0.1 * k) if 0.1 <= t <= 0.9]
            start = seg[0] + tries[0] * d
            for t in tries:
                p = seg[0] + t * d
                if all(np.hypot(*(p - q)) > 0.12 * diag for q in placed):
                    start = p
                    break
            placed.append(start)
            arrow = np.stack([start, start + 0.08 * diag * wj / np.hypot(*wj)])
        out.append(UnitLine(unit=j, weight=wj, bias=bj, segment=seg, arrow=arrow))
    return out


def _bounds(points: np.ndarray | None) -> Bounds:
    if points is None or len(points) == 0:
        return (-3.0, 3.0, -3.0, 3.0)
    lo, hi = points.min(0), points.max(0)
    half = 0.55 * np.maximum(hi - lo, 1e-3)
    half = np.maximum(half, 0.6 * half.max())  # not too flat: the picture keeps equal axis scales
    mid = (lo + hi) / 2
    return (float(mid[0] - half[0]), float(mid[0] + half[0]), float(mid[1] - half[1]), float(mid[1] + half[1]))


def hidden_units(
    model: Any,
    data: Any = None,
    labels: Any = None,
    class_names: Sequence[str] | None = None,
    bounds: Bounds | None = None,
    path: str | Path | None = None,
    resolution: int = 300,
    width: int = 850,
) -> Any:
    """Draw each first-layer hidden unit of a network on 2-D inputs over its decision regions.

    For ``Linear(2, h) - ReLU - Linear(h, k)`` (PyTorch) or ``Dense(h)`` on ``(N, 2)``
    inputs (Keras), hidden unit ``j`` computes ``a_j = w_j . x + b_j``; it is drawn as the
    line ``a_j = 0`` with an arrow along ``w_j`` pointing to the side where ``a_j > 0``
    (where a ReLU unit is active). Behind them: the model's decision regions (argmax of
    its output on a grid; the model runs in eval mode), and the data points coloured by
    label.

    Parameters
    ----------
    model:
        The network; its first layer with weights must be a dense layer with 2 inputs.
    data:
        Optional ``(N, 2)`` points.
    labels:
        Optional ``(N,)`` integer labels of the points.
    class_names:
        Names of the model's output classes.
    bounds:
        ``(xmin, xmax, ymin, ymax)``; default: the data's range plus 10% (widened so the
        picture is not too flat), or +-3.
    path:
        Also write the picture there as PNG.
    resolution:
        Grid points per axis for the decision regions.
    width:
        Picture width in pixels; the height follows from the bounds (equal axis scales).

    Returns
    -------
    PIL.Image.Image (RGB); the legend (classes and units) sits right of the axes.

    Raises
    ------
    ModelError
        The first layer is not a dense layer from R^2.
    InputError
        ``data`` is not ``(N, 2)``, or ``labels`` does not match it.
    """
    from matplotlib.figure import Figure

    from .. import render

    bk, first, w, b = _first_dense(model)
    pts = None
    if data is not None:
        pts = np.asarray(data.detach().cpu() if hasattr(data, "detach") else data, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise InputError(f"data must be (N, 2) points in the plane; got shape {pts.shape}.")
    lab = None
    if labels is not None:
        if pts is None:
            raise InputError("labels were given without data; pass the (N, 2) points too.")
        lab = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(lab) != len(pts):
            raise InputError(f"got {len(lab)} labels for {len(pts)} points.")
    box: Bounds = _bounds(pts) if bounds is None else (float(bounds[0]), float(bounds[1]), float(bounds[2]),
                                                         float(bounds[3]))
    if not (box[0] < box[1] and box[2] < box[3]):
        raise InputError(f"bounds must be (xmin, xmax, ymin, ymax) with min < max; got {box}.")

    gx = np.linspace(box[0], box[1], resolution)
    gy = np.linspace(box[2], box[3], resolution)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2).astype(np.float32)
    with session(bk, model) as run:
        out = run.ops.numpy(run.forward(model, run.prepare_input(model, grid)))
    out = out.reshape(len(grid), -1)
    if out.shape[1] > 1:
        region = out.argmax(1)
        n_classes = out.shape[1]
    else:  # one output: a logit, or a probability when it stays within [0, 1]
        cut = 0.5 if out.min() >= 0 and out.max() <= 1 else 0.0
        region = (out[:, 0] > cut).astype(np.int64)
        n_classes = 2
    if lab is not None:
        n_classes = max(n_classes, int(lab.max()) + 1)
    colours = class_colours(n_classes)
    shade = 1.0 - 0.28 * (1.0 - colours[region])  # pale versions of the class colours
    lines = _lines(w, b, box)

    dpi, left, right, bottom, top = 100, 60, 200, 40, 40  # margins in pixels; the legend goes right
    aw = max(width - left - right, 100)
    ah = int(np.clip(aw * (box[3] - box[2]) / (box[1] - box[0]), 100, 3 * aw))
    height = ah + bottom + top
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((left / width, bottom / height, aw / width, ah / height))
    # Equal scales on both axes, so that each arrow is drawn at right angles to its line.
    ax.imshow(shade.reshape(resolution, resolution, 3), origin="lower", extent=box, aspect="equal",
              interpolation="nearest")

    def name(k: int) -> str:
        return str(class_names[k]) if class_names is not None and k < len(class_names) else f"class {k}"

    handles = []
    for k in range(n_classes):
        sel = lab == k if lab is not None else np.zeros(0, bool)
        if sel.any() and pts is not None:
            handles.append(ax.scatter(pts[sel, 0], pts[sel, 1], s=18, color=colours[k], edgecolors="black",
                                      linewidths=0.4, label=name(k), zorder=3))
        else:
            handles.append(ax.scatter([], [], s=60, marker="s", color=1.0 - 0.28 * (1.0 - colours[k]),
                                      label=f"{name(k)} region"))
    if pts is not None and lab is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=14, color="black", linewidths=0, label="data", zorder=3)
    unit_colours = _unit_colours(len(lines))
    for line, colour in zip(lines, unit_colours):
        label = f"h{line.unit + 1}"
        if line.segment is None:
            handles.append(ax.plot([], [], color=colour, lw=2, label=f"{label} (outside)")[0])
            continue
        (xa, ya), (xb, yb) = line.segment
        handles.append(ax.plot([xa, xb], [ya, yb], color=colour, lw=2, label=label, zorder=4)[0])
        assert line.arrow is not None  # a line with a segment has an arrow
        (sx, sy), (tx, ty) = line.arrow
        ax.annotate("", xy=(tx, ty), xytext=(sx, sy), zorder=5,
                    arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 2, "mutation_scale": 16})
        ax.text(tx, ty, f" {label}", color=colour, fontsize=10, fontweight="bold", zorder=6,
                bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5})
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_title(f"hidden units of {first!r}: lines w.x + b = 0, arrows along w (unit active)", fontsize=11)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False,
              fontsize=10)
    img = figure_to_image(fig)
    if path is not None:
        render.save_png(img, path)
    return img


def _unit_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    base = colormaps["Dark2"].colors
    return [base[j % len(base)] if n <= len(base) else colormaps["turbo"](j / max(n - 1, 1)) for j in range(n)]
