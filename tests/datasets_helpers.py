"""Shared helpers of the data-set job tests: reading a run folder back, building image folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gradsight.demo.shapes import CLASSES, generate

VOLATILE = {"elapsed_s"}  # timing: the one column that differs between two runs


def read_run(out: Path) -> tuple[list[dict[str, Any]], dict[tuple[int, str], np.ndarray], dict[tuple[int, str], np.ndarray]]:
    """(manifest rows without timings, {(image_id, method): attribution}, {(image_id, method): heat map})."""
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    attrs, heats, cache = {}, {}, {}
    for r in rows:
        if r["status"] != "ok" or r["rank"] != 0:
            continue
        if r["store"] not in cache:
            with np.load(out / r["store"]) as z:
                cache[r["store"]] = {k: z[k] for k in z.files}
        z = cache[r["store"]]
        assert z["image_id"][r["store_index"]] == r["image_id"]
        attrs[r["image_id"], r["method"]] = z[r["store_key"]][r["store_index"]]
        heats[r["image_id"], r["method"]] = z[r["store_key"] + "__heatmap"][r["store_index"]]
    clean = [{k: v for k, v in r.items() if k not in VOLATILE | {"store", "store_index"}} for r in rows]
    return clean, attrs, heats


def assert_same_run(a: Path, b: Path, atol: float = 1e-5) -> None:
    """Two run folders hold the same results: manifest rows (floats within atol) and arrays."""
    rows_a, attr_a, heat_a = read_run(a)
    rows_b, attr_b, heat_b = read_run(b)
    assert len(rows_a) == len(rows_b)
    assert len({(r["image_id"], r["method"], r["rank"]) for r in rows_a}) == len(rows_a)  # no duplicate row
    for ra, rb in zip(rows_a, rows_b):
        for k in ra:
            if isinstance(ra[k], float):
                assert abs(ra[k] - rb[k]) <= atol * max(1.0, abs(ra[k])), (k, ra, rb)
            elif k == "top5_prob" and ra[k] is not None:
                np.testing.assert_allclose(ra[k], rb[k], atol=atol)
            else:
                assert ra[k] == rb[k], (k, ra, rb)
    assert attr_a.keys() == attr_b.keys()
    for key in attr_a:
        np.testing.assert_allclose(attr_a[key], attr_b[key], atol=atol, rtol=1e-4, err_msg=str(key))
        np.testing.assert_allclose(heat_a[key].astype(np.float32), heat_b[key].astype(np.float32), atol=2e-3)


def image_folder(root: Path, n: int, seed: int = 0, broken: int | None = None) -> list[int]:
    """ImageFolder layout root/<class>/<k>.png from generated demo images; image ``broken`` is a cut-off PNG.

    Returns the true labels in the order the job lists the files (sorted relative paths).
    """
    data = generate(n, seed=seed)
    entries = []
    for k in range(n):
        path = root / CLASSES[int(data.labels[k])] / f"img{k:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[k]).save(path)
        if k == broken:
            path.write_bytes(path.read_bytes()[:60])  # a truncated file: the header reads, decoding fails
        entries.append((path.relative_to(root).as_posix(), int(data.labels[k])))
    return [label for _, label in sorted(entries)]
