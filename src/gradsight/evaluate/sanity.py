"""Model-parameter randomisation sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

The layers that own trainable parameters are re-drawn at random from the logits downwards
(``order="cascading"``: step k randomises the top k layers) or one at a time
(``"independent"``), the explanation is recomputed, and each map is compared with the
original one by

- ``spearman``: Spearman rank correlation of the signed maps (input-resolution methods:
  the attribution summed over channels; Grad-CAM: its map);
- ``spearman_abs``: Spearman rank correlation of the absolute maps (``exp.heatmaps``);
- ``ssim``: structural similarity of the heat maps (scikit-image, data range 1);
- ``hog``: Pearson correlation of their HOG descriptors (scikit-image ``hog``).

A map that is constant (Grad-CAM of a random network is often all zeros) has no ranking:
its correlations are reported as 0. The explained class is the original model's (or the
given ``target``) at every step, as in the paper. Randomised weights are Gaussian with
each tensor's own mean and standard deviation, the same numbers on every backend
(:func:`gradsight.backends._random.random_like`); BatchNorm statistics are kept. The
user's model is randomised in place inside a ``with`` block and restored exactly on exit
(:meth:`Backend.randomized`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ._common import as_numpy, channel_axis, targets_of

__all__ = ["MEASURES", "SanityResult", "randomization_check", "sanity_figure", "similarity"]

MEASURES = ("spearman", "spearman_abs", "ssim", "hog")


@dataclass
class SanityResult:
    """Similarities to the original maps, per method, step and image.

    Attributes
    ----------
    order: ``"cascading"`` or ``"independent"``.
    steps: the column labels: the layer randomised last (cascading: every layer from the
        top down to it is random) or alone (independent).
    methods: method names.
    scores: measure -> (methods, steps, N) array.
    maps: method -> (1 + steps, N, H, W) heat maps, the original first (for the figure).
    """

    order: str
    steps: list[str]
    methods: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per (method, step): the mean of each measure over the images."""
        return [
            {"method": m, "randomised": s, **{k: float(np.mean(v[i, j])) for k, v in self.scores.items()}}
            for i, m in enumerate(self.methods)
            for j, s in enumerate(self.steps)
        ]


def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a.reshape(len(a), -1), axis=1)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.divide((a * b).sum(axis=1), den, out=np.zeros(len(a)), where=den > 0)


def similarity(signed0: np.ndarray, heat0: np.ndarray, signed1: np.ndarray, heat1: np.ndarray) -> dict[str, np.ndarray]:
    """The four measures (each (N,)) between original maps (signed, heat) and randomised ones."""
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    n = len(heat0)
    ssim = np.array([structural_similarity(heat0[i], heat1[i], data_range=1.0) for i in range(n)])
    cell = max(2, min(heat0.shape[1:]) // 8)

    def desc(h: np.ndarray) -> np.ndarray:
        return np.stack([hog(m, pixels_per_cell=(cell, cell), cells_per_block=(2, 2)) for m in h])

    return {
        "spearman": _pearson(_ranks(signed0), _ranks(signed1)),
        "spearman_abs": _pearson(_ranks(heat0), _ranks(heat1)),
        "ssim": ssim,
        "hog": _pearson(desc(heat0), desc(heat1)),
    }


def _signed(exp: Any, axis: int) -> np.ndarray:
    a = np.asarray(exp.attributions, dtype=np.float64)
    if a.ndim == 4 and tuple(np.delete(a.shape, [0, axis])) == exp.heatmaps.shape[1:]:
        return a.sum(axis=axis)
    return np.asarray(exp.heatmaps, dtype=np.float64)  # Grad-CAM: the map at the layer, resized


def randomization_check(
    model: Any,
    x: Any,
    methods: list[str] | str,
    target: Any = None,
    *,
    order: str = "cascading",
    layers: list[str] | None = None,
    seed: int = 0,
    explain_options: dict[str, dict[str, Any]] | None = None,
    progress: Any = None,
) -> SanityResult:
    """Run the model-parameter randomisation check.

    Parameters
    ----------
    model, x: as in :func:`gradsight.explain` (x in the model's layout).
    methods: method names (or one name).
    target: None (each image's top-1 for the original model), an int or N ints.
    order: ``"cascading"`` (top layer first, then also the next, ...) or ``"independent"``.
    layers: the parameter layers, input to output (default: all of them, from the backend).
    seed: seed of the random weights.
    explain_options: per method, options for :func:`gradsight.explain` (e.g. a Grad-CAM layer).
    progress: called with no arguments after each explanation (a progress bar's update).
    """
    from ..api import explain, predict
    from ..backends import backend_for

    if order not in ("cascading", "independent"):
        raise InputError(f"order must be 'cascading' or 'independent'; got {order!r}")
    methods = [methods] if isinstance(methods, str) else list(methods)
    x = as_numpy(x)
    axis = channel_axis(model)
    bk = backend_for(model)
    all_layers = bk.parameter_layers(model)
    layers = all_layers if layers is None else list(layers)
    if not layers:
        raise InputError("the model has no layers with trainable parameters to randomise")
    targets = targets_of(target, None, predict(model, x)).tolist()
    top_down = layers[::-1]
    sets = [top_down[: k + 1] for k in range(len(top_down))] if order == "cascading" else [[n] for n in top_down]
    opts = explain_options or {}

    def run(method: str) -> tuple[np.ndarray, np.ndarray]:
        exp = explain(model, x, method=method, target=targets, **opts.get(method, {}))
        if progress is not None:
            progress()
        return _signed(exp, axis), np.asarray(exp.heatmaps, dtype=np.float64)

    result = SanityResult(order=order, steps=top_down, methods=methods)
    originals = {m: run(m) for m in methods}
    per: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in methods] for k in MEASURES}
    maps: dict[str, list[np.ndarray]] = {m: [originals[m][1]] for m in methods}
    for chosen in sets:
        with bk.randomized(model, chosen, seed):
            for i, m in enumerate(methods):
                signed, heat = run(m)
                for k, v in similarity(originals[m][0], originals[m][1], signed, heat).items():
                    per[k][i].append(v)
                maps[m].append(heat)
    result.scores = {k: np.array(v) for k, v in per.items()}
    result.maps = {m: np.stack(v) for m, v in maps.items()}
    return result


def sanity_figure(result: SanityResult, path: Any, index: int = 0, image: np.ndarray | None = None) -> Any:
    """The paper's figure for image ``index``: rows = methods, columns = original then each step; saved as PNG."""
    from matplotlib.figure import Figure

    rows, cols = len(result.methods), 1 + len(result.steps) + (image is not None)
    fig = Figure(figsize=(1.3 * cols, 1.4 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    titles = (["input"] if image is not None else []) + ["original"] + list(result.steps)
    for i, m in enumerate(result.methods):
        panels = ([image] if image is not None else []) + list(result.maps[m][:, index])
        for j, p in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(p, cmap=None if p.ndim == 3 else "gray", vmin=0, vmax=1 if p.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=7, rotation=30)
            if j == 0:
                ax.set_ylabel(m, fontsize=7)
    fig.suptitle(f"model-parameter randomisation ({result.order}): columns left to right randomise more", fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
