"""Fixtures for the serve tests: a folder of PNG files and a data-set run folder in the issue-11 format.

The run folder is written here, with pyarrow and numpy, exactly as the contract in
docs/serve.md describes it (run.json, manifest.parquet, attributions/part-NNNNN.npz,
embedding.parquet), so the viewer is tested against the format, not against the job's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from gradsight.demo.shapes import CLASSES, generate

N_RUN = 6
RUN_METHODS = ("gradcam", "saliency")
# image_id -> (label, predicted, probability of the predicted class); ids 1 and 4 are wrong.
RUN_TRUTH = {0: (0, 0, 0.97), 1: (1, 3, 0.55), 2: (2, 2, 0.80), 3: (3, 3, 0.91), 4: (4, 0, 0.42), 5: (0, 0, 0.66)}


def write_images(folder: Path, n: int = 4, seed: int = 11) -> list[Path]:
    """``n`` demo-style PNG files ``img_<i>.png`` (64x64) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = generate(n, seed=seed)
    paths = []
    for i, im in enumerate(data.images):
        path = folder / f"img_{i}.png"
        Image.fromarray(im).save(path)
        paths.append(path)
    return paths


def heat_for(image_id: int, method: str) -> np.ndarray:
    """The (64, 64) float16 heat map stored for an item: a smooth blob, different per image and method."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    cx, cy = 10 + 8 * image_id, 50 - 6 * image_id
    width = 6.0 if method == "gradcam" else 12.0
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2)).astype(np.float16)


def write_run(folder: Path, data_root: Path) -> Path:
    """A finished run over ``data_root``'s ``img_<i>.png`` files (written here too), with an embedding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    write_images(data_root, N_RUN, seed=21)
    (folder / "run.json").write_text(json.dumps({
        "format": "gradsight-run/1", "model": "demo", "weights": None, "framework": "torch",
        "methods": list(RUN_METHODS), "target": "top1", "classes": list(CLASSES), "data": str(data_root),
        "data_root": str(data_root), "input_size": [64, 64], "dtype": "float32", "seed": 0,
    }))
    (folder / "attributions").mkdir(exist_ok=True)
    rows: dict[str, list] = {k: [] for k in (
        "image_id", "path", "label", "predicted", "target", "score", "prob", "top5", "top5_prob", "method",
        "store", "store_key", "store_index", "png", "status", "error", "elapsed_s")}
    parts = [(0, [0, 1, 2]), (1, [3, 4, 5])]
    for part, ids in parts:
        store = f"attributions/part-{part:05d}.npz"
        arrays: dict[str, np.ndarray] = {"image_id": np.array(ids, np.int64)}
        for m in RUN_METHODS:
            arrays[m] = np.zeros((len(ids), 3, 64, 64), np.float32)
            arrays[f"{m}__heatmap"] = np.stack([heat_for(i, m) for i in ids])
        np.savez(folder / store, **arrays)
        for j, iid in enumerate(ids):
            label, pred, prob = RUN_TRUTH[iid]
            top5 = [pred] + [k for k in range(5) if k != pred]
            rest = (1.0 - prob) / 4
            for m in RUN_METHODS:
                rows["image_id"].append(iid)
                rows["path"].append(f"img_{iid}.png")
                rows["label"].append(label)
                rows["predicted"].append(pred)
                rows["target"].append(pred)
                rows["score"].append(2.0 * prob)
                rows["prob"].append(prob)
                rows["top5"].append(top5)
                rows["top5_prob"].append([prob] + [rest] * 4)
                rows["method"].append(m)
                rows["store"].append(store)
                rows["store_key"].append(m)
                rows["store_index"].append(j)
                rows["png"].append(None)
                rows["status"].append("ok")
                rows["error"].append(None)
                rows["elapsed_s"].append(0.01)
    schema = pa.schema([
        ("image_id", pa.int64()), ("path", pa.string()), ("label", pa.int64()), ("predicted", pa.int64()),
        ("target", pa.int64()), ("score", pa.float32()), ("prob", pa.float32()), ("top5", pa.list_(pa.int64())),
        ("top5_prob", pa.list_(pa.float32())), ("method", pa.string()), ("store", pa.string()),
        ("store_key", pa.string()), ("store_index", pa.int64()), ("png", pa.string()), ("status", pa.string()),
        ("error", pa.string()), ("elapsed_s", pa.float32()),
    ])
    pq.write_table(pa.table(rows, schema=schema), folder / "manifest.parquet")
    ids = np.arange(N_RUN)
    pq.write_table(pa.table({"image_id": ids, "x": np.cos(ids).astype(np.float32), "y": np.sin(ids).astype(np.float32)}),
                   folder / "embedding.parquet")
    (folder / "summary.md").write_text("# run\n")
    return folder
