"""Explain a whole data set: a streaming, resumable job, on one machine or on a Ray cluster.

>>> import gradsight as gs
>>> result = gs.explain_dataset("demo", "demo:2000", "runs/demo", method="gradcam,saliency")
>>> result.failed, result.throughput

The output folder is described in docs/run-format.md. Both engines run the same
per-batch function (:class:`BatchExplainer`) and write through the same writer, so their
outputs agree. Needs pyarrow (``pip install 'gradsight[data]'``); the Ray engine also
needs Ray Data (``pip install 'gradsight[ray]'``).
"""

from __future__ import annotations

from ._explain import BatchExplainer, JobSpec
from ._job import DTYPES, ENGINES, RunResult, explain_dataset
from ._sources import Source, decode_batch, open_source

__all__ = [
    "explain_dataset",
    "RunResult",
    "BatchExplainer",
    "JobSpec",
    "Source",
    "open_source",
    "decode_batch",
    "ENGINES",
    "DTYPES",
]
