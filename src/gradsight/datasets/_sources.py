"""Where a data-set job's images come from, and how one image is read.

A source is listed once into :class:`Source` (paths and labels only, never pixels); the
pixels are read later, a batch at a time, by :func:`decode_batch`, which both engines
call. Forms of ``SOURCE``:

- ``demo`` or ``demo:N``: the bundled shapes images, generated on the fly (N images,
  default 1000; image i depends only on the seed and i);
- a folder: every image below it, recursively, in sorted order; when the folder holds
  sub-folders, the first-level sub-folder names are the classes (ImageFolder layout);
- ``LIST.csv`` / ``LIST.parquet``: a ``path`` column (else the first column) and an
  optional ``label`` column (class indices, or class names sorted into indices);
  relative paths are relative to the list's folder;
- a glob (``images/**/*.jpg``): the matching image files, sorted; no labels.
"""

from __future__ import annotations

import csv
import glob as globlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["Source", "open_source", "decode_batch", "IMAGE_SUFFIXES", "DEMO_DEFAULT_SIZE"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEMO_DEFAULT_SIZE = 1000
DEMO_PREFIX = "demo://"
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Source:
    """A listed data set: one entry per image, in a stable order (the image_id is the index).

    Attributes
    ----------
    spec: the SOURCE as given.
    paths: per image, the path relative to ``root`` (or absolute when ``root`` is None), or
        ``demo://<index>`` for the generated set.
    labels: int64 (N,), -1 where unknown (for ``demo`` the label is known only once the image
        is generated, so it is -1 here and filled in by :func:`decode_batch`).
    classes: class names when the source names them (folder names, label strings, the demo's).
    root: absolute folder the paths are relative to, or None.
    """

    spec: str
    paths: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...] | None
    root: str | None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def is_demo(self) -> bool:
        return self.spec.split(":", 1)[0] == "demo"


def open_source(spec: str) -> Source:
    """List the images of ``spec`` (see the module docstring); raises InputError on a bad source."""
    spec = str(spec).strip()
    if spec == "demo" or spec.startswith("demo:"):
        return _demo(spec)
    path = Path(spec)
    if path.is_dir():
        return _folder(path, spec)
    if path.suffix.lower() in (".csv", ".parquet", ".pq") and path.is_file():
        return _listing(path, spec)
    if _GLOB_CHARS & set(spec):
        return _glob(spec)
    if path.suffix.lower() in (".csv", ".parquet", ".pq"):
        raise InputError(f"data list not found: {spec!r}; check the path.")
    raise InputError(
        f"cannot use --data {spec!r}: not a folder, a .csv/.parquet list, a glob (with * or ?) or 'demo[:N]'. "
        "Check the path."
    )


def _demo(spec: str) -> Source:
    from ..demo.shapes import CLASSES

    _, _, count = spec.partition(":")
    try:
        n = int(count) if count else DEMO_DEFAULT_SIZE
    except ValueError:
        raise InputError(f"--data {spec!r}: use 'demo' or 'demo:N' with N a number of images.") from None
    if n < 1:
        raise InputError(f"--data {spec!r}: the demo set needs at least 1 image.")
    return Source(spec, tuple(f"{DEMO_PREFIX}{i}" for i in range(n)), np.full(n, -1, np.int64), CLASSES, None)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _folder(path: Path, spec: str) -> Source:
    root = path.resolve()
    files = sorted(
        (Path(d) / f).relative_to(root)
        for d, dirs, names in os.walk(root)
        for f in names
        if _is_image(Path(f))
    )
    if not files:
        raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) found under {spec!r}.")
    subdirs = sorted({f.parts[0] for f in files if len(f.parts) > 1})
    index = {c: k for k, c in enumerate(subdirs)}
    labels = np.array([index[f.parts[0]] if len(f.parts) > 1 else -1 for f in files], np.int64)
    return Source(spec, tuple(f.as_posix() for f in files), labels, tuple(subdirs) or None, str(root))


def _glob(spec: str) -> Source:
    files = sorted(p for p in globlib.glob(spec, recursive=True) if _is_image(Path(p)) and Path(p).is_file())
    if not files:
        raise InputError(f"the glob {spec!r} matches no image files.")
    parts = Path(spec).parts
    fixed = next((k for k, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    root = Path(*parts[:fixed]).resolve() if fixed else Path.cwd()
    rel = tuple(os.path.relpath(Path(p).resolve(), root) for p in files)
    return Source(spec, tuple(Path(r).as_posix() for r in rel), np.full(len(files), -1, np.int64), None, str(root))


def _listing(path: Path, spec: str) -> Source:
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        columns: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in (rows[0].keys() if rows else ())}
    else:
        pq = _pyarrow_parquet()
        columns = pq.read_table(path).to_pydict()
    if not columns or not next(iter(columns.values())):
        raise InputError(f"the data list {spec!r} has no rows.")
    path_col = "path" if "path" in columns else next(iter(columns))
    paths = [str(p) for p in columns[path_col]]
    classes: tuple[str, ...] | None = None
    if "label" in columns:
        raw = ["" if v is None else str(v).strip() for v in columns["label"]]
        if all(v == "" or _is_int(v) for v in raw):
            labels = np.array([int(v) if v != "" else -1 for v in raw], np.int64)
        else:
            classes = tuple(sorted({v for v in raw if v != ""}))
            index = {c: k for k, c in enumerate(classes)}
            labels = np.array([index[v] if v != "" else -1 for v in raw], np.int64)
    else:
        labels = np.full(len(paths), -1, np.int64)
    root = path.resolve().parent
    rel = tuple(Path(os.path.relpath((root / p).resolve(), root)).as_posix() for p in paths)
    return Source(spec, rel, labels, classes, str(root))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError(
            f"data-set jobs write a Parquet manifest and need pyarrow ({exc}); pip install 'gradsight[data]'."
        ) from exc
    return pq


# --------------------------------------------------------------------------- reading pixels


def read_image(path: str, root: str | None, size: int, seed: int) -> tuple[np.ndarray, int]:
    """One image as uint8 (size, size, 3) RGB and its generated label (-1 unless demo)."""
    if path.startswith(DEMO_PREFIX):
        from ..demo.shapes import image_at

        image, label = image_at(int(path[len(DEMO_PREFIX):]), seed=seed, size=size)
        return image, int(label)
    from PIL import Image

    full = os.path.join(root, path) if root is not None else path
    with Image.open(full) as im:
        rgb = im.convert("RGB")  # a truncated or corrupt file fails here, when decoded
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8), -1


def decode_batch(batch: dict[str, Any], root: str | None, size: int, seed: int, pool: Any = None) -> dict[str, Any]:
    """Add ``image`` (uint8 (n, size, size, 3)) and ``error`` (str, "" when read) to a batch of items.

    ``batch`` holds ``image_id``, ``path``, ``label`` (and any other columns, kept).
    An unreadable image gets a black picture and its reason in ``error``; the batch goes on.
    ``pool``: an optional executor to read the images in parallel (the local engine's threads).
    """
    paths: Sequence[str] = [str(p) for p in batch["path"]]

    def one(p: str) -> tuple[np.ndarray, int, str]:
        try:
            image, label = read_image(p, root, size, seed)
            return image, label, ""
        except Exception as exc:  # any reason an image cannot be read becomes that row's error
            return np.zeros((size, size, 3), np.uint8), -1, f"cannot read image: {type(exc).__name__}: {exc}"

    results = list(pool.map(one, paths)) if pool is not None else [one(p) for p in paths]
    out = dict(batch)
    out["image"] = np.stack([r[0] for r in results]) if results else np.zeros((0, size, size, 3), np.uint8)
    labels = np.asarray(batch["label"], np.int64).copy()
    generated = np.array([r[1] for r in results], np.int64)
    labels[generated >= 0] = generated[generated >= 0]
    out["label"] = labels
    out["error"] = np.array([r[2] for r in results], dtype=object)
    return out
