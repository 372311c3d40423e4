"""The human-readable end of a job: ``summary.md`` and ``class_means.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._store import atomic_path

__all__ = ["write_summary", "write_class_means", "class_mean_maps"]


def class_mean_maps(out: Path, table: Any, method: str) -> dict[int, tuple[np.ndarray, int]]:
    """Per class: the mean heat map of ``method`` over correctly classified images, and how many.

    Streams through the parts one at a time (the attributions never sit in memory together).
    """
    cols = {c: table.column(c).to_numpy(zero_copy_only=False)
            for c in ("label", "predicted", "method", "rank", "status", "store", "store_index")}
    label = np.array([-1 if v is None or v != v else v for v in cols["label"]], np.int64)  # None/NaN: unlabelled
    predicted = np.array([-2 if v is None or v != v else v for v in cols["predicted"]], np.int64)
    pick = np.flatnonzero((cols["method"] == method) & (cols["rank"] == 0) & (cols["status"] == "ok")
                          & (label >= 0) & (label == predicted))
    by_store: dict[str, list[tuple[int, int]]] = {}
    for j in pick.tolist():
        by_store.setdefault(cols["store"][j], []).append((int(cols["store_index"][j]), int(label[j])))
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for store in sorted(by_store):
        with np.load(out / store) as z:
            heat = z[f"{method}__heatmap"]
        index, labels = (np.array(v, np.int64) for v in zip(*by_store[store]))
        for label in np.unique(labels).tolist():
            h = heat[index[labels == label]].astype(np.float64)
            h = h[:, 0] if h.ndim == 4 else h  # top5: the first (top-1) target
            sums[label] = sums[label] + h.sum(axis=0) if label in sums else h.sum(axis=0)
            counts[label] = counts.get(label, 0) + len(h)
    return {c: (sums[c] / counts[c], counts[c]) for c in sorted(sums)}


def write_class_means(out: Path, table: Any, methods: tuple[str, ...], classes: list[str] | None) -> str | None:
    """class_means.png: one tile per class, the mean Grad-CAM of its correctly classified images.

    Uses Grad-CAM when it ran, else the first method. Returns the method used, or None when
    no image was both labelled and correctly classified (no picture is written then).
    """
    from .. import render

    method = "gradcam" if "gradcam" in methods else methods[0]
    means = class_mean_maps(out, table, method)
    if not means:
        return None
    side = max(128, max(m.shape[0] for m, _ in means.values()))
    tiles = [render.colorize(render.resize(render.normalize(m), (side, side))) for m, _ in means.values()]
    names = [(classes[c] if classes and c < len(classes) else f"class {c}") for c in means]
    titles = [f"{name} (n={n})" for name, (_, n) in zip(names, means.values())]
    picture = render.grid([tiles], titles=titles)
    with atomic_path(out / "class_means.png") as tmp:
        render.save_png(picture, tmp)  # PNG whatever the temporary name
    return method


def write_summary(out: Path, meta: dict[str, Any], table: Any, run_stats: dict[str, Any], means_method: str | None) -> None:
    """summary.md: counts, accuracy, failures and throughput."""
    rows = table.select(["image_id", "path", "label", "predicted", "method", "rank", "status", "error"]).to_pylist()
    first = meta["methods"][0]
    per_image = [r for r in rows if r["method"] == first and r["rank"] == 0]
    failed_images = sorted({r["image_id"] for r in rows if r["status"] == "failed"})
    labelled = [r for r in per_image if r["label"] is not None and r["status"] == "ok"]
    correct = sum(r["label"] == r["predicted"] for r in labelled)
    classes = meta.get("classes")
    lines = [
        "# gradsight run",
        "",
        f"- model: `{meta['model']}` ({meta['framework']}), data: `{meta['data']}`",
        (f"- methods: {', '.join(meta['methods'])}; target: {meta['target']}; dtype: {meta['dtype']}; "
         f"seed: {meta['seed']}"),
        (f"- images: {len(per_image)}; explained: {len(per_image) - len(failed_images)}; "
         f"failed: {len(failed_images)}"),
    ]
    if labelled:
        lines.append(f"- accuracy on the {len(labelled)} labelled images: {correct / len(labelled):.2%}")
        if classes:
            lines += ["", "| class | images | accuracy |", "|---|---|---|"]
            for c, name in enumerate(classes):
                rs = [r for r in labelled if r["label"] == c]
                if rs:
                    acc = sum(r["label"] == r["predicted"] for r in rs) / len(rs)
                    lines.append(f"| {name} | {len(rs)} | {acc:.2%} |")
    lines += [
        "",
        (f"Last run: {run_stats['processed']} images in {run_stats['elapsed_s']:.1f} s "
         f"({run_stats['throughput']:.1f} images/s, engine {run_stats['engine']}, "
         f"{run_stats['workers']} workers, batch size {run_stats['batch_size']})."),
    ]
    if means_method:
        lines += ["", f"![mean {means_method} per class](class_means.png)",
                  "", f"Mean {means_method} heat map of the correctly classified images of each class."]
    if failed_images:
        lines += ["", "## Failures", "", "| image_id | path | error |", "|---|---|---|"]
        shown = [r for r in per_image if r["status"] == "failed"][:50]
        for r in shown:
            lines.append(f"| {r['image_id']} | {r['path']} | {str(r['error']).replace('|', '/')} |")
        if len(failed_images) > len(shown):
            lines.append(f"\n... and {len(failed_images) - len(shown)} more (status == 'failed' in manifest.parquet).")
        lines.append("\nRerun the same command with --retry-failed to try them again.")
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
