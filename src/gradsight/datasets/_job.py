"""``explain_dataset``: the job, and its local engine (threads read ahead while the model works)."""

from __future__ import annotations

import hashlib
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._explain import TARGETS, BatchExplainer, JobSpec
from ._report import write_class_means, write_summary
from ._sources import Source, _pyarrow_parquet, decode_batch, open_source
from ._store import FORMAT, RunFolder
from ._store import concat_batches as _concat

__all__ = ["explain_dataset", "RunResult", "ENGINES", "DTYPES"]

ENGINES = ("local", "ray")
DTYPES = ("float32", "float16")
PREFETCH_PARTS = 2  # parts decoded ahead of the model (at least; one per reader process)
READ_CHUNK = 8  # images per reader request


@dataclass(frozen=True)
class RunResult:
    """What a job did.

    Attributes
    ----------
    out: the output folder.
    images: images in the data set.
    ok: images explained (every method).
    failed: images with a failed row (see manifest.parquet's ``status`` and ``error``).
    processed: images this call worked on (the rest were done by an earlier run).
    elapsed_s: this call's wall time; throughput: processed / elapsed_s.
    """

    out: Path
    images: int
    ok: int
    failed: int
    processed: int
    elapsed_s: float
    throughput: float

    @property
    def exit_status(self) -> int:
        """0 when nothing failed, 3 otherwise (the CLI's exit status)."""
        return 0 if self.failed == 0 else 3


def explain_dataset(
    model: str,
    data: str,
    out: str | Path,
    method: str | Sequence[str] = "gradcam",
    *,
    weights: str | None = None,
    framework: str | None = None,
    trust_pickle: bool = False,
    target: str = "top1",
    layer: str | None = None,
    batch_size: int = 32,
    engine: str = "local",
    workers: int = 2,
    address: str | None = None,
    dtype: str = "float32",
    png: bool = False,
    size: int | None = None,
    preprocess: str | None = None,
    seed: int = 0,
    samples: int | None = None,
    noise: float | None = None,
    overwrite: bool = False,
    retry_failed: bool = False,
    quiet: bool = False,
) -> RunResult:
    """Explain every image of a data set, streaming, into the folder ``out`` (docs/run-format.md).

    Parameters
    ----------
    model, weights, framework, trust_pickle:
        The model SPEC as for the ``gradsight`` CLI (``demo``, ``package.module:factory``,
        ``FILE.pt``, ``FILE.keras``/``.h5``); each engine worker loads it once.
    data:
        ``demo[:N]``, a folder (ImageFolder labels), a ``.csv``/``.parquet`` list or a glob.
    method:
        One method name, a comma-separated list, or a sequence of names.
    target:
        ``top1`` (each image's predicted class), ``label`` (its true class) or ``top5``.
    batch_size:
        Images per model call (the first run also cuts the data set into parts of this size).
    engine, workers, address:
        ``local``: ``workers`` reader processes; ``ray``: ``workers`` model actors on Ray Data,
        joining the cluster at ``address`` or starting (and stopping) a local Ray instance.
    dtype:
        Attributions stored as ``float32`` or ``float16`` (half the size).
    png:
        Also write an overlay PNG per image and method.
    size, preprocess:
        Model input size and normalisation (default: the model's own).
    seed, samples, noise:
        SmoothGrad's seed (per image: from ``seed`` and the image's index) and options.
    overwrite:
        Replace another run found in ``out``; otherwise a different command is refused.
    retry_failed:
        Explain again the images that failed in an earlier run.
    quiet:
        No progress bar (it shows only when stderr is a terminal anyway).

    Returns
    -------
    RunResult. Rerunning the same call after a crash finishes the job; the outputs equal
    those of an uninterrupted run.
    """
    from ..methods import get_method

    t0 = time.perf_counter()
    names = [m.strip() for m in (method.split(",") if isinstance(method, str) else method) if m.strip()]
    if not names:
        raise InputError("no method given; use e.g. --method gradcam,saliency.")
    methods = tuple(dict.fromkeys(get_method(m).name for m in names))
    if target not in TARGETS:
        raise InputError(f"--target must be one of {', '.join(TARGETS)}; got {target!r}.")
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    if dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}; got {dtype!r}.")
    for name, value in (("--batch-size", batch_size), ("--workers", workers)):
        if int(value) < 1:
            raise InputError(f"{name} must be at least 1; got {value}.")
    if address is not None and engine != "ray":
        raise InputError("--address joins a Ray cluster; add --engine ray.")
    _pyarrow_parquet()  # the manifest needs pyarrow: fail before any work
    options = {"smoothgrad": {k: v for k, v in (("samples", samples), ("noise", noise)) if v is not None}}
    options = {m: o for m, o in options.items() if o and m in methods}
    spec = JobSpec(
        model=_absolute(model) or model, weights=_absolute(weights), framework=framework, methods=methods, target=target,
        layer=None if layer in (None, "auto") else layer, data=str(data), size=size, preprocess=preprocess,
        dtype=dtype, seed=int(seed), png=bool(png), options=options, trust_pickle=trust_pickle,
    )
    source = open_source(str(data))
    explainer = BatchExplainer(spec, batch_size=batch_size)  # loads the model and checks every option now
    source = _model_labels(source, explainer.info.class_names)
    meta = _metadata(spec, source, explainer, batch_size)
    folder = RunFolder(out, meta, identity=_IDENTITY, overwrite=overwrite)
    todo = _pending(folder, len(source), retry_failed)
    total_pending = sum(len(ids) for _, ids in todo)
    bar = _progress(total_pending, quiet)

    pngs = _png_writer(explainer.info.layout) if png else None

    done_before = set(folder.done_parts())

    def finish(part: int, res: dict[str, Any]) -> None:
        new = len(res["image_id"])
        if part in done_before:  # --retry-failed: keep the part's earlier successes
            old = folder.load_part(part, methods)
            if "image" in res:  # their PNGs exist already; the placeholder pixels are never drawn
                old["image"] = np.zeros((len(old["image_id"]), *res["image"].shape[1:]), np.uint8)
            res = _concat([old, res])
        folder.write_part(part, res, methods, pngs)
        bar.update(new)

    try:
        if engine == "local":
            _run_local(source, todo, explainer, workers, finish)
        else:
            from ._ray import run_ray

            del explainer  # the actors load their own copies; free this one
            run_ray(source, todo, spec, meta, batch_size, workers, address, finish)
        table = folder.write_manifest()
        elapsed = time.perf_counter() - t0
        stats = {"processed": total_pending, "elapsed_s": elapsed, "throughput": total_pending / max(elapsed, 1e-9),
                 "engine": engine, "workers": workers, "batch_size": batch_size}
        means = write_class_means(folder.out, table, methods, meta["classes"])
        write_summary(folder.out, meta, table, stats, means)
    finally:
        bar.close()
        folder.close()
    status = table.column("status").to_pylist()
    ids = table.column("image_id").to_pylist()
    failed = len({i for i, s in zip(ids, status) if s == "failed"})
    return RunResult(folder.out, len(source), len(source) - failed, failed, total_pending, elapsed,
                     total_pending / max(elapsed, 1e-9))


def _absolute(path: str | None) -> str | None:
    """A model or weights file as an absolute path: Ray workers need not share the driver's working folder."""
    return str(Path(path).resolve()) if path is not None and Path(path).is_file() else path


_IDENTITY = ["format", "model", "weights", "framework", "methods", "target", "layer", "data", "data_digest",
             "num_images", "input_size", "preprocess", "dtype", "seed", "png", "options"]


def _model_labels(source: Source, model_classes: Sequence[str] | None) -> Source:
    """Folder or list class names that all name model classes become the model's class indices.

    (Sub-folders sort alphabetically, a model's classes come in its own order.)
    """
    if not source.classes or not model_classes or not set(source.classes) <= set(model_classes):
        return source
    index = {c: k for k, c in enumerate(model_classes)}
    mapping = np.array([index[c] for c in source.classes], np.int64)
    labels = np.where(source.labels >= 0, mapping[np.maximum(source.labels, 0)], -1)
    return Source(source.spec, source.paths, labels, tuple(model_classes), source.root)


def _metadata(spec: JobSpec, source: Source, explainer: BatchExplainer, batch_size: int) -> dict[str, Any]:
    from .. import __version__

    digest = hashlib.sha1()
    for p, label in zip(source.paths, source.labels.tolist()):
        digest.update(f"{p}\t{label}\n".encode())
    info = explainer.info
    classes = list(info.class_names) if info.class_names else (list(source.classes) if source.classes else None)
    return {
        "format": FORMAT, "model": spec.model, "weights": spec.weights, "framework": info.framework,
        "methods": list(spec.methods), "target": spec.target, "layer": spec.layer, "classes": classes,
        "data": spec.data, "data_root": source.root, "data_digest": digest.hexdigest(), "num_images": len(source),
        "input_size": [explainer.size, explainer.size], "preprocess": explainer.prep, "layout": info.layout,
        "dtype": spec.dtype, "seed": spec.seed, "png": spec.png, "options": spec.options,
        "part_size": int(batch_size), "attribution_shapes": {m: list(s) for m, s in explainer.attr_shapes.items()},
        "gradsight_version": __version__,
    }


def _pending(folder: RunFolder, n: int, retry_failed: bool) -> list[tuple[int, list[int]]]:
    """(part, image ids) still to do: parts without manifest rows, and with --retry-failed the failed images."""
    done = folder.done_parts()
    size = folder.part_size
    todo = []
    for part in range((n + size - 1) // size):
        if part not in done:
            todo.append((part, list(range(part * size, min(n, (part + 1) * size)))))
        elif retry_failed:
            ids = folder.failed_ids(part)
            if ids:
                todo.append((part, ids))
    return todo


def _items(source: Source, ids: list[int], part: int) -> dict[str, Any]:
    idx = np.asarray(ids, np.int64)
    return {
        "image_id": idx,
        "path": np.array([source.paths[i] for i in ids], dtype=object),
        "label": source.labels[idx],
        "part": np.full(len(ids), part, np.int64),
    }


def _run_local(
    source: Source, todo: list[tuple[int, list[int]]], explainer: BatchExplainer, workers: int,
    finish: Callable[[int, dict[str, Any]], None],
) -> None:
    """Parts in order; while the model explains one, ``workers`` reader processes decode the next ones.

    The readers run at a lower priority (``_readers``): they use the cores the model leaves
    idle. A part is read in chunks; when the model needs a part, the chunks the readers have
    not finished are read here at once, so the job never waits on a reader (on a busy
    machine it reads like a plain loop, on an idle one the reading is hidden).
    """
    from ..backends import backend_for
    from ._cores import CoreShare
    from ._readers import ReaderPool

    if not todo:
        return
    size, seed, root = explainer.size, explainer.spec.seed, source.root
    (part, ids), rest = todo[0], iter(todo[1:])
    ahead = max(PREFETCH_PARTS, workers)
    readers = ReaderPool(min(workers, len(todo) - 1), root, size, seed) if len(todo) > 1 else None
    # One writer thread: a part's files are written while the model explains the next part
    # (the files are the same; at most one part waits to be written).
    # The model's threads: one fewer when that lets the readers' work overlap and is faster (_cores).
    cores = CoreShare(backend_for(explainer.model), len(todo) if readers is not None else 0)
    with readers or nullcontext(), ThreadPoolExecutor(1, thread_name_prefix="gradsight-write") as writer, cores:
        window: deque[tuple[int, list[tuple[dict[str, Any], Future[dict[str, Any]]]]]] = deque()
        written: Future[None] | None = None

        def refill() -> None:
            while readers is not None and len(window) < ahead:
                nxt = next(rest, None)
                if nxt is None:
                    return
                chunks = [_items(source, nxt[1][c:c + READ_CHUNK], nxt[0]) for c in range(0, len(nxt[1]), READ_CHUNK)]
                window.append((nxt[0], [(items, readers.submit(items)) for items in chunks]))

        def collect(chunks: list[tuple[dict[str, Any], Future[dict[str, Any]]]]) -> dict[str, Any]:
            done = []
            for items, future in chunks:
                if future.done() and not future.cancelled():
                    done.append(future.result())
                else:  # not read yet: here and now (a reader already on it finishes in vain)
                    future.cancel()
                    done.append(decode_batch(items, root, size, seed))
            return _concat(done)

        refill()  # the readers start on the next parts while this process reads the first
        batch = decode_batch(_items(source, ids, part), root, size, seed)
        t = time.perf_counter()
        while True:
            res = explainer(batch)
            if written is not None:
                written.result()  # a failed write stops the job here
            written = writer.submit(finish, part, res)
            now = time.perf_counter()
            cores.step(now - t)  # this part's time: reading what the readers left, explaining, the writer's wait
            t = now
            if not window:
                break
            part, chunks = window.popleft()
            refill()
            batch = collect(chunks)
        written.result()


def _png_writer(model_layout: str) -> Callable[..., None]:
    """Overlay PNGs of a part's explained images (--png); files already there (earlier runs) stay."""
    from ..demo.runner import picture
    from ..explanation import Explanation

    def write(res: dict[str, Any], rows: np.ndarray, method: str, paths: list[list[Path] | None]) -> None:
        from .. import render
        from ._store import atomic_path

        if "image" not in res:
            return
        layout = "channels_first" if model_layout == "NCHW" else "channels_last"
        for i in rows:
            heats = np.asarray(res[f"{method}__heatmap"][i], np.float32)
            attrs = np.asarray(res[f"{method}__attr"][i], np.float32)
            if heats.ndim == 2:  # one target; top5 holds one map per rank
                heats, attrs = heats[None], attrs[None]
            for path, heat, attr in zip(paths[i] or [], heats, attrs):
                if path.exists():
                    continue
                exp = Explanation(method=method, attributions=attr[None], heatmaps=heat[None], targets=None,
                                  scores=np.zeros(1, np.float32), outputs=None, layout=layout)
                with atomic_path(path) as tmp:
                    render.save_png(picture(exp, 0, np.asarray(res["image"][i], np.uint8)), tmp)

    return write


class _Bar:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(total: int, quiet: bool) -> _Bar:
    """A bar with images/s and ETA, on stderr, only when it is a terminal and not --quiet."""
    if quiet or not sys.stderr.isatty() or total == 0:
        return _Bar(None)
    from tqdm import tqdm

    return _Bar(tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, smoothing=0.1))
