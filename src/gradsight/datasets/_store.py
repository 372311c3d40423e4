"""The output folder of a data-set job (docs/run-format.md) and how it survives a crash.

The data set is cut into *parts* of ``part_size`` consecutive images (part k holds images
k * part_size ... (k + 1) * part_size - 1, fixed by the first run). A finished part is
two files, each written under a temporary name and renamed into place (``os.replace`` is
atomic), the attributions first:

- ``attributions/part-NNNNN.npz``
- ``.state/part-NNNNN.parquet``: the part's manifest rows; its presence marks the part done.

A job killed at any moment leaves whole files only; the rerun skips the parts whose
manifest rows exist, redoes the others (writing the same bytes again), and finally
gathers every part's rows into ``manifest.parquet``. The parts do not depend on the
batch size, the engine or the worker count, so a resumed run's files equal an
uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["RunFolder", "FORMAT", "atomic_path", "manifest_schema"]

FORMAT = "gradsight-run/1"
STATE = ".state"
LOCK = ".gradsight.lock"
# What --overwrite may delete: only what a run writes, never other files a user keeps there.
_UMASK = os.umask(0)
os.umask(_UMASK)
_OWNED = ("run.json", "manifest.parquet", "summary.md", "class_means.png", "attributions", STATE, "png")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; on success rename it to ``path`` (atomic), else remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a finished file gets the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("image_id", pa.int64()), ("path", pa.string()), ("label", pa.int64()), ("predicted", pa.int64()),
        ("target", pa.int64()), ("rank", pa.int64()), ("score", pa.float32()), ("prob", pa.float32()),
        ("top5", pa.list_(pa.int64())), ("top5_prob", pa.list_(pa.float32())), ("method", pa.string()),
        ("store", pa.string()), ("store_key", pa.string()), ("store_index", pa.int64()), ("png", pa.string()),
        ("status", pa.string()), ("error", pa.string()), ("elapsed_s", pa.float32()),
    ])


def _lock(path: Path) -> Any:
    """Hold an exclusive lock on ``path`` for the life of the returned file: one job per folder at a time.

    The operating system drops the lock when the process ends, however it ends (kill -9 too).
    """
    fh = open(path, "a")  # noqa: SIM115 -- held open for the whole job: the lock lives as long as the file
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one job per folder is up to the user
        return fh
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise InputError(
            f"another gradsight job is writing to {path.parent}; wait for it to end or choose another --out."
        ) from None
    return fh


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class RunFolder:
    """``DIR`` of one job: its metadata, the finished parts, and writing a part.

    Parameters
    ----------
    out: the folder.
    meta: run.json's content for this run (``identity`` keys must match an existing run).
    identity: the keys of ``meta`` a rerun must repeat.
    overwrite: start afresh even if DIR holds another run.
    """

    def __init__(self, out: str | os.PathLike[str], meta: dict[str, Any], identity: list[str], overwrite: bool) -> None:
        self.out = Path(out)
        self.state = self.out / STATE
        path = self.out / "run.json"
        fresh = not self.out.exists() or all(p.name == LOCK for p in self.out.iterdir())
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.out / LOCK)  # before anything is read or changed
        if path.exists() and not overwrite:
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                self.close()
                raise InputError(f"{path} is unreadable ({exc}); pass --overwrite to start afresh.") from None
            diff = _diff({k: old.get(k) for k in identity}, {k: meta[k] for k in identity})
            if diff:
                self.close()
                raise InputError(
                    f"{self.out} holds a run of a different command; differences: {'; '.join(diff)}. "
                    "Rerun the same command to finish it, choose another --out, or pass --overwrite to replace it."
                )
            meta = {**meta, "part_size": old["part_size"]}  # the parts keep the first run's cut
        elif path.exists() or (overwrite and self.out.exists()):
            for name in _OWNED:
                p = self.out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        elif not fresh:
            self.close()
            raise InputError(
                f"{self.out} is not empty and holds no gradsight run; choose an empty or new --out folder."
            )
        self.meta = meta
        self.part_size = int(meta["part_size"])
        self._written: dict[int, Any] = {}  # manifest rows of the parts this run wrote
        self.out.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(exist_ok=True)
        (self.out / "attributions").mkdir(exist_ok=True)
        # left by a killed run; never renamed into place (.part: render.save_png's own temporary name)
        for tmp in list(self.out.rglob(".*.tmp")) + list(self.out.rglob(".*.part")):
            tmp.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")

    # ------------------------------------------------------------------ parts

    def part_name(self, part: int) -> str:
        return f"part-{part:05d}"

    def done_parts(self) -> dict[int, Path]:
        """Finished parts: number -> its manifest rows file."""
        out = {}
        for p in self.state.glob("part-*.parquet"):
            out[int(p.stem.split("-")[1])] = p
        return out

    def failed_ids(self, part: int) -> list[int]:
        import pyarrow.parquet as pq

        t = pq.read_table(self.state / f"{self.part_name(part)}.parquet", columns=["image_id", "status"])
        ids = t.column("image_id").to_numpy()
        failed = np.asarray(t.column("status").to_pylist()) == "failed"
        return sorted({int(i) for i in ids[failed]})

    def load_part(self, part: int, methods: tuple[str, ...]) -> dict[str, Any]:
        """A finished part's successful images back as a result batch (to merge with retried images)."""
        import pyarrow.parquet as pq

        rows = pq.read_table(self.state / f"{self.part_name(part)}.parquet").to_pylist()
        rows = [r for r in rows if r["status"] == "ok"]
        with np.load(self.out / "attributions" / f"{self.part_name(part)}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        ids = [int(i) for i in arrays["image_id"]]
        n = len(ids)
        first = {r["image_id"]: r for r in rows if r["method"] == methods[0] and r["rank"] == 0}
        ranks = 1 + max((r["rank"] for r in rows), default=0)
        k = len(first[ids[0]]["top5"]) if n else 0
        batch: dict[str, Any] = {
            "image_id": np.array(ids, np.int64),
            "path": np.array([first[i]["path"] for i in ids], dtype=object),
            "label": np.array([-1 if first[i]["label"] is None else first[i]["label"] for i in ids], np.int64),
            "error": np.array([""] * n, dtype=object),
            "predicted": np.array([first[i]["predicted"] for i in ids], np.int64),
            "top5": np.array([first[i]["top5"] for i in ids], np.int64).reshape(n, k),
            "top5_prob": np.array([first[i]["top5_prob"] for i in ids], np.float32).reshape(n, k),
        }
        pos = {i: j for j, i in enumerate(ids)}
        for m in methods:
            for col in ("target", "score", "prob"):
                batch[f"{m}__{col}"] = np.zeros((n, ranks), np.int64 if col == "target" else np.float32)
            batch[f"{m}__elapsed"] = np.zeros(n, np.float32)
            for r in rows:
                if r["method"] == m:
                    j = pos[r["image_id"]]
                    batch[f"{m}__target"][j, r["rank"]] = r["target"]
                    batch[f"{m}__score"][j, r["rank"]] = r["score"]
                    batch[f"{m}__prob"][j, r["rank"]] = r["prob"]
                    batch[f"{m}__elapsed"][j] = r["elapsed_s"]
            batch[f"{m}__attr"] = arrays[m]
            batch[f"{m}__heatmap"] = arrays[f"{m}__heatmap"]
        return batch

    def write_part(self, part: int, res: dict[str, Any], methods: tuple[str, ...], pngs: Any = None) -> dict[str, int]:
        """Write one part from a result batch (rows in image_id order): npz, PNGs, then its manifest rows.

        ``pngs(res, ok_rows, method, paths)``: draws the overlays (``--png``), given their paths
        (per image, one per rank: ``--target top5`` draws each of the five targets).
        Returns {"ok": images done, "failed": images failed}.
        """
        import pyarrow.parquet as pq

        order = np.argsort(np.asarray(res["image_id"]), kind="stable")
        if (order != np.arange(len(order))).any():  # the engines deliver parts in order: usually no copy
            res = {k: (v[order] if v is not None and len(v) == len(order) else v) for k, v in res.items()}
        name = self.part_name(part)
        errors = [str(e) for e in res["error"]]
        ok = np.array([not e for e in errors], bool)
        store = f"attributions/{name}.npz"
        arrays: dict[str, np.ndarray] = {"image_id": np.asarray(res["image_id"], np.int64)[ok]}
        for m in methods:
            arrays[m] = _rows(np.asarray(res[f"{m}__attr"]), ok)
            arrays[f"{m}__heatmap"] = _rows(np.asarray(res[f"{m}__heatmap"], np.float16), ok)
        with atomic_path(self.out / store) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        png_paths: dict[str, list[list[str] | None]] = {}  # per method and image: one path per rank
        for m in methods:
            png_paths[m] = [None] * len(errors)
            if pngs is not None:
                ranked = np.asarray(res[f"{m}__heatmap"]).ndim == 4  # --target top5: (n, ranks, H, W)
                ranks = np.asarray(res[f"{m}__heatmap"]).shape[1] if ranked else 1
                for j in np.flatnonzero(ok):
                    base = f"png/{m}/{int(res['image_id'][j])}_{Path(str(res['path'][j])).stem}"  # demo://7 -> 7
                    png_paths[m][j] = [f"{base}_top{r + 1}.png" for r in range(ranks)] if ranked else [f"{base}.png"]
                pngs(res, np.flatnonzero(ok), m, [[self.out / p for p in ps] if ps else None for ps in png_paths[m]])
        table = _part_rows(res, methods, ok, errors, store, png_paths)
        with atomic_path(self.state / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp)
        self._written[part] = table  # write_manifest need not read it back
        return {"ok": int(ok.sum()), "failed": int((~ok).sum())}

    def close(self) -> None:
        """Release the folder's lock."""
        self._lock.close()

    # ------------------------------------------------------------------ the end

    def write_manifest(self) -> Any:
        """Gather every part's rows into manifest.parquet, sorted by (image_id, method, rank); the table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = sorted(self.done_parts().items())
        tables = [(self._written[k] if k in self._written else pq.read_table(p, schema=manifest_schema())) for k, p in parts]
        table = pa.concat_tables(tables) if tables else manifest_schema().empty_table()
        table = table.sort_by([("image_id", "ascending"), ("method", "ascending"), ("rank", "ascending")])
        with atomic_path(self.out / "manifest.parquet") as tmp:
            pq.write_table(table, tmp)
        return table


def _rows(a: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``a[ok]``, without a copy when every row is kept."""
    return a if ok.all() else a[ok]


def _part_rows(
    res: dict[str, Any], methods: tuple[str, ...], ok: np.ndarray, errors: list[str], store: str,
    png_paths: dict[str, list[list[str] | None]],
) -> Any:
    """A part's manifest rows, one per (image, method, rank) in that order, built column by column.

    A failed image's rows keep image_id, path, label, method, rank, status, error and
    elapsed_s; its other fields are null.
    """
    import pyarrow as pa

    n, m_count = len(errors), len(methods)
    ranks = int(np.asarray(res[f"{methods[0]}__target"]).reshape(n, -1).shape[1]) if n else 1
    per = m_count * ranks  # rows per image
    bad = np.repeat(~ok, per)

    def per_image(a: Any) -> np.ndarray:
        return np.repeat(np.asarray(a), per, axis=0)

    def per_rank(col: str, dtype: Any) -> np.ndarray:  # (n, methods, ranks) flattened
        return np.stack([np.asarray(res[f"{m}__{col}"], dtype).reshape(n, ranks) for m in methods], 1).reshape(-1)

    def listed(values: np.ndarray, kind: Any) -> Any:
        k = values.shape[1] if values.ndim == 2 else 0
        flat = pa.array(values.reshape(-1), kind)
        return pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1, dtype=np.int32) * k), flat, mask=pa.array(bad))

    label = per_image(np.asarray(res["label"], np.int64))
    rank = np.tile(np.arange(ranks, dtype=np.int64), n * m_count)
    method = np.tile(np.repeat(np.array(methods, dtype=object), ranks), n)
    png = np.array([[ps[r] if (ps := png_paths[m][i]) and r < len(ps) else None for m in methods for r in range(ranks)]
                    for i in range(n)], dtype=object).reshape(-1)
    elapsed = np.stack([np.asarray(res[f"{m}__elapsed"], np.float32) for m in methods], 1)
    columns = {
        "image_id": pa.array(per_image(np.asarray(res["image_id"], np.int64)), pa.int64()),
        "path": pa.array(per_image(np.array([str(p) for p in res["path"]], dtype=object)), pa.string()),
        "label": pa.array(label, pa.int64(), mask=label < 0),
        "predicted": pa.array(per_image(np.asarray(res["predicted"], np.int64)), pa.int64(), mask=bad),
        "target": pa.array(per_rank("target", np.int64), pa.int64(), mask=bad),
        "rank": pa.array(rank, pa.int64()),
        "score": pa.array(per_rank("score", np.float32), pa.float32(), mask=bad),
        "prob": pa.array(per_rank("prob", np.float32), pa.float32(), mask=bad),
        "top5": listed(per_image(np.asarray(res["top5"], np.int64).reshape(n, -1)), pa.int64()),
        "top5_prob": listed(per_image(np.asarray(res["top5_prob"], np.float32).reshape(n, -1)), pa.float32()),
        "method": pa.array(method, pa.string()),
        "store": pa.array(np.full(n * per, store, dtype=object), pa.string(), mask=bad),
        "store_key": pa.array(method, pa.string(), mask=bad),
        "store_index": pa.array(per_image(np.cumsum(ok) - 1).astype(np.int64), pa.int64(), mask=bad),
        "png": pa.array(png, pa.string()),
        "status": pa.array(np.where(bad, "failed", "ok").astype(object), pa.string()),
        "error": pa.array(per_image(np.array([e or None for e in errors], dtype=object)), pa.string()),
        "elapsed_s": pa.array(np.repeat(elapsed, ranks, axis=1).reshape(-1), pa.float32()),
    }
    return pa.Table.from_pydict(columns, schema=manifest_schema())


def concat_batches(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Join result batches column by column (columns missing from some batches are dropped)."""
    batches = [b for b in batches if len(b["image_id"])]
    if len(batches) == 1:
        return batches[0]
    keys = [k for k in batches[0] if all(k in b for b in batches)]
    return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in keys}
