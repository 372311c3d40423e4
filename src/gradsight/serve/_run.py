"""Reading the output folder of a data-set run (``gradsight run ... --out DIR``) for the viewer.

The folder's contract (written by the data-set job): ``run.json``; ``manifest.parquet`` with
one row per (image, method); ``attributions/part-NNNNN.npz`` holding ``<method>`` and
``<method>__heatmap`` arrays; optional ``png/``, ``summary.md``, ``class_means.png`` and
``embedding.parquet`` (``image_id``, ``x``, ``y``). Needs pyarrow.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._cache import LRU
from ._images import NotFound, safe_path

__all__ = ["SORT_KEYS", "RunDir"]

SORT_KEYS = ("image_id", "confidence", "label", "predicted", "prob")
FORMAT = "gradsight-run/1"


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError(f"reading a run folder needs pyarrow ({exc}); pip install pyarrow.") from exc
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several kinds for a broken file
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


class RunDir:
    """A run folder: its images (one entry per ``image_id`` with every method's row) and saved heat maps."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        meta = self.root / "run.json"
        if not meta.is_file():
            raise InputError(
                f"{root} is not a gradsight run folder: it has no run.json. Pass the --out folder of 'gradsight run'."
            )
        try:
            self.meta: dict[str, Any] = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {meta}: {exc}") from exc
        fmt = str(self.meta.get("format", ""))
        if fmt != FORMAT:
            raise InputError(f"{meta} has format {fmt!r}; this viewer reads {FORMAT!r}.")
        if not (self.root / "manifest.parquet").is_file():
            raise InputError(f"{root} has no manifest.parquet; the run may not have finished.")
        self.rows = _read_parquet(self.root / "manifest.parquet")
        self.items: dict[int, dict[str, Any]] = {}
        for row in self.rows:
            iid = int(row["image_id"])
            item = self.items.get(iid)
            if item is None:
                top5 = [int(v) for v in (row.get("top5") or [])]
                top5p = [float(v) for v in (row.get("top5_prob") or [])]
                predicted = int(row["predicted"])
                conf = top5p[0] if top5p and top5 and top5[0] == predicted else None
                label = row.get("label")
                item = self.items[iid] = {
                    "image_id": iid,
                    "path": row.get("path"),
                    "label": None if label is None else int(label),
                    "predicted": predicted,
                    "correct": None if label is None else int(label) == predicted,
                    "confidence": conf,
                    "top5": top5,
                    "top5_prob": top5p,
                    "methods": {},
                }
            if item["confidence"] is None and int(row["target"]) == item["predicted"] and row.get("prob") is not None:
                item["confidence"] = float(row["prob"])
            if int(row.get("rank") or 0) != 0:  # a top5 run: the viewer shows the top-ranked row
                continue
            item["methods"][str(row["method"])] = {
                "target": int(row["target"]),
                "score": None if row.get("score") is None else float(row["score"]),
                "prob": None if row.get("prob") is None else float(row["prob"]),
                "status": row.get("status"),
                "error": row.get("error"),
                "png": row.get("png"),
                "store": row.get("store"),
                "store_key": row.get("store_key"),
                "store_index": None if row.get("store_index") is None else int(row["store_index"]),
            }
        self.order = sorted(self.items)
        emb = self.root / "embedding.parquet"
        self.embedding_rows = _read_parquet(emb) if emb.is_file() else None
        self._npz: LRU[str, Any] = LRU(8)
        self._npz_lock = threading.Lock()

    # ------------------------------------------------------------------ listing

    @property
    def classes(self) -> list[str] | None:
        names = self.meta.get("classes")
        return [str(n) for n in names] if isinstance(names, list) else None

    @property
    def methods(self) -> list[str]:
        listed = self.meta.get("methods")
        seen = list(dict.fromkeys(str(r["method"]) for r in self.rows))
        return [str(m) for m in listed] if isinstance(listed, list) else seen

    def summary(self) -> dict[str, Any]:
        """``GET /api/run``: the run's metadata, counts and what can be shown."""
        items = self.items.values()
        labelled = [i for i in items if i["correct"] is not None]
        return {
            "meta": self.meta,
            "images": len(self.items),
            "rows": len(self.rows),
            "failed": sum(1 for r in self.rows if r.get("status") != "ok"),
            "accuracy": (sum(i["correct"] for i in labelled) / len(labelled)) if labelled else None,
            "methods": self.methods,
            "classes": self.classes,
            "has_embedding": self.embedding_rows is not None,
            "files": [p for p in ("summary.md", "class_means.png") if (self.root / p).is_file()],
        }

    def query(
        self,
        *,
        cls: int | None = None,
        label: int | None = None,
        predicted: int | None = None,
        correct: bool | None = None,
        min_conf: float | None = None,
        max_conf: float | None = None,
        sort: str = "image_id",
        order: str = "asc",
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Filter and sort the images; ``cls`` matches the true or the predicted class."""
        if sort not in SORT_KEYS:
            raise InputError(f"sort must be one of {', '.join(SORT_KEYS)}; got {sort!r}.")
        if order not in ("asc", "desc"):
            raise InputError(f"order must be 'asc' or 'desc'; got {order!r}.")
        if offset < 0 or not 1 <= limit <= 1000:
            raise InputError(f"offset must be >= 0 and limit in 1..1000; got offset={offset}, limit={limit}.")
        out = []
        for iid in self.order:
            it = self.items[iid]
            conf = it["confidence"]
            if cls is not None and cls not in (it["label"], it["predicted"]):
                continue
            if label is not None and it["label"] != label:
                continue
            if predicted is not None and it["predicted"] != predicted:
                continue
            if correct is not None and it["correct"] is not correct:
                continue
            if min_conf is not None and (conf is None or conf < min_conf):
                continue
            if max_conf is not None and (conf is None or conf > max_conf):
                continue
            out.append(it)
        key = "confidence" if sort == "prob" else sort

        def sort_key(it: dict[str, Any]) -> tuple[bool, float, int]:
            v = it[key]
            return (v is None, 0.0 if v is None else float(v), it["image_id"])

        out.sort(key=sort_key, reverse=order == "desc")
        return {"total": len(out), "offset": offset, "items": [self.public(it) for it in out[offset:offset + limit]]}

    def public(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item as the API shows it (file locations inside the run folder kept out)."""
        names = self.classes
        out = {k: v for k, v in item.items() if k != "methods"}
        out["label_name"] = names[item["label"]] if names and item["label"] is not None and item["label"] < len(names) else None
        out["predicted_name"] = names[item["predicted"]] if names and item["predicted"] < len(names) else None
        out["methods"] = {
            m: {k: v for k, v in r.items() if k not in ("store", "store_key", "store_index")}
            for m, r in item["methods"].items()
        }
        return out

    def item(self, image_id: int) -> dict[str, Any]:
        if image_id not in self.items:
            raise NotFound(f"the run has no image with image_id {image_id}.")
        return self.items[image_id]

    def embedding(self) -> list[dict[str, Any]]:
        """Points of the 2-D embedding with each image's classes; :class:`NotFound` when the run has none."""
        if self.embedding_rows is None:
            raise NotFound("this run has no embedding.parquet (run the data-set job with an embedding).")
        points = []
        for r in self.embedding_rows:
            it = self.items.get(int(r["image_id"]))
            points.append({
                "image_id": int(r["image_id"]),
                "x": float(r["x"]),
                "y": float(r["y"]),
                "label": None if it is None else it["label"],
                "predicted": None if it is None else it["predicted"],
                "correct": None if it is None else it["correct"],
            })
        return points

    # ------------------------------------------------------------------ arrays and pictures

    def heatmap(self, image_id: int, method: str) -> np.ndarray:
        """The saved (H, W) heat map in [0, 1] of ``image_id`` by ``method``, as float32."""
        row = self.item(image_id)["methods"].get(method)
        if row is None:
            raise NotFound(f"image {image_id} has no {method!r} explanation in this run; it has {', '.join(self.item(image_id)['methods'])}.")
        if row["status"] != "ok" or not row["store"]:
            raise NotFound(f"the {method} explanation of image {image_id} failed in the run: {row['error']}")
        data = self._open(row["store"])
        key = f"{row['store_key'] or method}__heatmap"
        if key not in data:
            raise NotFound(f"{row['store']} holds no {key!r} array.")
        return np.asarray(data[key][int(row["store_index"] or 0)], dtype=np.float32)

    def _open(self, store: str) -> Any:
        hit = self._npz.get(store)
        if hit is not None:
            return hit
        path = safe_path(self.root, store, "attribution store")
        if not path.is_file():
            raise NotFound(f"the run's attribution file {store} is missing.")
        with self._npz_lock, np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}  # read once: NpzFile is not thread-safe
        self._npz.put(store, data)
        return data

    def source_image(self, image_id: int) -> np.ndarray | None:
        """The image the run explained, uint8 (H, W, 3), or None when it cannot be found."""
        from PIL import Image

        path = self.item(image_id)["path"]
        if not path:
            return None
        if str(path).startswith("demo://"):
            return self._demo_image(int(str(path)[len("demo://"):]))
        root = self.meta.get("data_root")
        file = safe_path(Path(root), str(path), "image") if root else Path(str(path))
        if not file.is_file():
            return None
        with Image.open(file) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    def _demo_image(self, index: int) -> np.ndarray:
        # The generated demo set: image i depends only on (seed, i, size), see gradsight.demo.shapes.
        from ..demo.shapes import IMAGE_SIZE, generate

        seed = int(self.meta.get("data_seed", self.meta.get("seed", 0)))
        size = self.meta.get("input_size") or [IMAGE_SIZE]
        return generate(index + 1, seed=seed, size=int(size[0]))[index].images[0]

    def file(self, relative: str) -> Path:
        """A file inside the run folder (no escape), e.g. ``png/gradcam/3_x.png`` or ``summary.md``."""
        path = safe_path(self.root, relative, "run file")
        if not path.is_file():
            raise NotFound(f"the run has no file {relative!r}.")
        return path
