"""The Ray engine: Ray Data read -> decode tasks -> ``map_batches`` on an actor pool -> the same writer.

Each actor builds one :class:`BatchExplainer` (the model loaded once per actor, one GPU per
actor when the cluster has GPUs). The driver receives the result batches as they stream
out, groups them by part and writes each finished part exactly as the local engine does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError
from ._explain import BatchExplainer, JobSpec
from ._sources import Source, decode_batch
from ._store import concat_batches as _concat

__all__ = ["run_ray"]


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise InputError(f"--engine ray needs Ray Data ({exc}); pip install 'gradsight[ray]'.") from exc
    return ray


@contextlib.contextmanager
def _session(ray: Any, address: str | None, workers: int) -> Any:
    """Join the cluster at ``address``, use a Ray already initialised, or start a local one (stopped at the end)."""
    if ray.is_initialized():
        yield
        return
    if address is not None:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # One CPU per model actor, one left for the decode tasks.
        ray.init(num_cpus=max(2, workers + 1), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def run_ray(
    source: Source,
    todo: list[tuple[int, list[int]]],
    spec: JobSpec,
    meta: dict[str, Any],
    batch_size: int,
    workers: int,
    address: str | None,
    finish: Callable[[int, dict[str, Any]], None],
) -> None:
    """Explain the images of ``todo`` ((part, image ids)) on Ray; ``finish(part, results)`` per finished part."""
    ray = _import_ray()
    if not todo:
        return
    expected = {part: len(ids) for part, ids in todo}
    rows = [
        {"image_id": i, "path": source.paths[i], "label": int(source.labels[i]), "part": part}
        for part, ids in todo for i in ids
    ]
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.WARNING)  # Ray Data's plan and timing lines; gradsight reports progress itself
    try:
        with _session(ray, address, workers):
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # gradsight draws its own bar
            ctx.execution_options.preserve_order = False
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
            size = int(meta["input_size"][0])
            ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // batch_size, 200)))
            # Decoding: Ray tasks running the function the local engine's reader processes run.
            ds = ds.map_batches(decode_batch, fn_kwargs={"root": source.root, "size": size, "seed": spec.seed},
                                batch_size=batch_size, batch_format="numpy", num_cpus=0.5)
            # Explaining: an actor pool; Ray Data restarts a killed actor and reruns its batch (its defaults
            # max_restarts=-1, max_task_retries=-1), and the driver only ever sees whole result batches.
            ds = ds.map_batches(
                BatchExplainer,
                fn_constructor_kwargs={"spec": _plain(spec), "batch_size": batch_size},
                batch_size=batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=0 if gpus else 1, num_gpus=gpus,
            )
            buffers: dict[int, list[dict[str, Any]]] = {}
            seen: dict[int, int] = {}
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
                parts = np.asarray(batch["part"])
                for part in np.unique(parts):
                    part = int(part)
                    sel = np.flatnonzero(parts == part)
                    buffers.setdefault(part, []).append({k: np.asarray(v)[sel] for k, v in batch.items()})
                    seen[part] = seen.get(part, 0) + len(sel)
                    if seen[part] == expected[part]:
                        finish(part, _concat(buffers.pop(part)))
    finally:
        data_log.setLevel(level)


def _plain(spec: JobSpec) -> dict[str, Any]:
    d = dict(spec.identity(), trust_pickle=spec.trust_pickle)
    d["methods"] = tuple(spec.methods)
    return d

