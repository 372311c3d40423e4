"""All metrics for several methods at once, with bootstrap intervals, per-class numbers and pictures.

:func:`compare` is what ``gradsight evaluate`` runs; its :class:`Comparison` holds every
per-image value, so the API gives the same numbers as the command's files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._common import as_numpy, channel_axis, image_shape, random_maps
from .faithfulness import RISE_STEP, deletion, insertion
from .pointing import energy_pointing_game, pointing_game
from .road import road
from .sanity import SanityResult, randomization_check, sanity_figure

__all__ = ["METRICS", "RANDOM", "Comparison", "bootstrap_ci", "compare"]

METRICS = ("deletion", "insertion", "road", "pointing", "sanity")
"""Metric groups; ``pointing`` gives two columns (pointing, energy) and ``sanity`` its own table."""

RANDOM = "random"
"""The name of the chance baseline: a uniform random ranking of the pixels (seeded)."""

COLUMNS = {
    "deletion": ("deletion_auc", "lower is better"),
    "insertion": ("insertion_auc", "higher is better"),
    "road": ("road", "higher is better: (MoRF drop - LeRF drop) / 2"),
    "pointing": ("pointing", "hit rate"),
    "energy": ("energy_pointing", "share of positive mass on the object"),
}


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs left out)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


@dataclass
class Comparison:
    """Per-image values: ``values[method][column]`` (N,); curves for the plot; the sanity result."""

    methods: list[str]
    labels: np.ndarray | None
    class_names: Sequence[str] | None
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    sanity: SanityResult | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per (method, column): mean, 95% bootstrap interval, number of images."""
        rows = []
        for m, cols in self.values.items():
            for c, v in cols.items():
                lo, hi = bootstrap_ci(v)
                rows.append({"method": m, "metric": c, "mean": float(np.nanmean(v)), "ci_low": lo, "ci_high": hi,
                             "n": int(np.isfinite(v).sum())})  # fmt: skip
        return rows

    def per_class(self) -> list[dict[str, Any]]:
        """Mean per (method, column, class) where labels are known."""
        if self.labels is None:
            return []
        rows = []
        for m, cols in self.values.items():
            for c, v in cols.items():
                for k in np.unique(self.labels):
                    sel = v[self.labels == k]
                    name = self.class_names[k] if self.class_names and k < len(self.class_names) else str(k)
                    rows.append({"method": m, "metric": c, "class": name, "n": int(np.isfinite(sel).sum()),
                                 "mean": float(np.nanmean(sel)) if np.isfinite(sel).any() else float("nan")})  # fmt: skip
        return rows

    def markdown(self) -> str:
        """The method x metric table as Markdown: ``mean [95% interval]``."""
        cols = [c for c in (v for v, _ in COLUMNS.values()) if any(c in d for d in self.values.values())]
        lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        by = {(r["method"], r["metric"]): r for r in self.table()}
        for m in self.values:
            cells = []
            for c in cols:
                r = by.get((m, c))
                cells.append("-" if r is None else f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def sanity_words(self) -> str:
        """The cascading check in words: where each method's map stops resembling the original.

        A map "decorrelates" at the first step where the mean rank correlation with the
        original falls below 0.5; reported for the signed map and for its absolute value.
        """
        s = self.sanity
        if s is None:
            return ""

        def first_below(v: np.ndarray) -> str:
            below = np.flatnonzero(v < 0.5)
            if below.size == 0:
                return f"stays >= 0.5 through every step (down to {s.steps[-1]})"
            j = int(below[0])
            return f"falls below 0.5 ({v[j]:.2f}) once {s.steps[j]} is randomised (step {j + 1} of {len(s.steps)})"

        out = []
        rho, rho_abs = (s.scores[k].mean(axis=-1) for k in ("spearman", "spearman_abs"))
        ssim = s.scores["ssim"].mean(axis=-1)
        for i, m in enumerate(s.methods):
            out.append(
                f"- {m}: rank correlation with the original {first_below(rho[i])}; of |map| {first_below(rho_abs[i])}; "
                f"SSIM {ssim[i, 0]:.2f} after the top layer, {ssim[i, -1]:.2f} with every layer random."
            )
        out.append(
            "A map that stays similar while the weights it should explain are destroyed does not explain them "
            "(Adebayo et al. 2018)."
        )
        return "\n".join(out)

    def write(self, out: str | Path, image: np.ndarray | None = None) -> list[Path]:
        """summary.csv, per_class.csv, report.md, curves.png, and sanity.csv/sanity.png; returns the paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [_csv(out / "summary.csv", self.table()), _csv(out / "per_class.csv", self.per_class())]
        if self.curves:
            written.append(self._plot_curves(out / "curves.png"))
        text = ["# gradsight evaluate", "", self.markdown(), ""]
        text += [f"- {c}: {d}" for c, d in COLUMNS.values() if any(c in v for v in self.values.values())]
        text += [f"- {RANDOM}: a uniform random ranking of the pixels (the chance baseline)", ""]
        if self.sanity is not None:
            written.append(_csv(out / "sanity.csv", self.sanity.table()))
            written.append(sanity_figure(self.sanity, out / "sanity.png", image=image))
            text += [f"## Model-parameter randomisation ({self.sanity.order})", "", self.sanity_words(), ""]
        (out / "report.md").write_text("\n".join(text))
        return [out / "report.md"] + written

    def _plot_curves(self, path: Path) -> Path:
        from matplotlib.figure import Figure

        kinds = [k for k in ("deletion", "insertion") if any(k in c for c in self.curves.values())]
        fig = Figure(figsize=(5 * len(kinds), 4))
        axes = fig.subplots(1, len(kinds), squeeze=False)[0]
        for ax, kind in zip(axes, kinds):
            for m, c in self.curves.items():
                if kind in c:
                    frac, curve = c[kind]
                    auc = np.trapezoid(curve, frac)
                    ax.plot(frac, curve, label=f"{m} ({auc:.3f})", ls="--" if m == RANDOM else "-")
            ax.set_title(f"{kind} (mean curve; AUC in brackets)")
            ax.set_xlabel("fraction of pixels " + ("removed" if kind == "deletion" else "restored"))
            ax.set_ylabel("probability of the explained class")
            ax.legend(fontsize=7)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        return path


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def compare(
    model: Any,
    x: Any,
    methods: Sequence[str],
    metrics: Sequence[str] = METRICS,
    *,
    labels: Any = None,
    masks: Any = None,
    class_names: Sequence[str] | None = None,
    step: float = RISE_STEP,
    tolerance: float = 15,
    percentages: Sequence[float] = tuple(range(10, 100, 10)),
    batch_size: int = 64,
    seed: int = 0,
    explain_options: dict[str, dict[str, Any]] | None = None,
    sanity_images: int = 8,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Every metric in ``metrics`` for every method in ``methods`` plus the random baseline.

    Each method explains ``labels`` (the true classes) when given, else each image's top-1.
    ``masks`` (N, H, W) are needed for ``pointing``. The sanity check runs on the first
    ``sanity_images`` images. ``progress(stage)`` is called after each unit of work.
    """
    from ..api import explain

    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    x = as_numpy(x)
    n = len(x)
    h, w = image_shape(x, channel_axis(model))
    target = None if labels is None else np.asarray(labels, dtype=np.int64).tolist()
    if "pointing" in metrics and masks is None:
        raise InputError("the pointing game needs object masks (the demo data has them); leave out 'pointing'")
    opts = explain_options or {}
    tick = progress or (lambda _stage: None)
    res = Comparison(methods=list(methods), labels=None if labels is None else np.asarray(labels),
                     class_names=class_names,
                     options={"step": step, "tolerance": tolerance, "seed": seed})  # fmt: skip
    for m in list(methods) + [RANDOM]:
        if m == RANDOM:
            maps: Any = random_maps(n, h, w, seed)
        else:
            maps = explain(model, x, method=m, target=target, **opts.get(m, {}))
        tick(m)
        vals: dict[str, np.ndarray] = {}
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for kind, fn in (("deletion", deletion), ("insertion", insertion)):
            if kind in metrics:
                r = fn(model, x, maps, target, step=step, batch_size=batch_size)
                vals[f"{kind}_auc"] = r.auc
                curves[kind] = (r.fractions, r.curves.mean(axis=0))
                tick(kind)
        if "road" in metrics:
            vals["road"] = road(model, x, maps, target, percentages=percentages, seed=seed,
                                batch_size=batch_size).summary  # fmt: skip
            tick("road")
        if "pointing" in metrics:
            heat = maps if isinstance(maps, np.ndarray) else maps.heatmaps
            pg = pointing_game(heat, masks, tolerance)
            vals["pointing"] = np.where(pg.valid, pg.hits.astype(float), np.nan)
            vals["energy_pointing"] = energy_pointing_game(heat, masks)
            tick("pointing")
        res.values[m] = vals
        if curves:
            res.curves[m] = curves
    if "sanity" in metrics:
        k = min(sanity_images, n)
        res.sanity = randomization_check(model, x[:k], list(methods), None if target is None else target[:k],
                                         seed=seed, explain_options=opts, progress=lambda: tick("sanity"))  # fmt: skip
    return res
