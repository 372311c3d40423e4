"""Long runs keep memory flat: no hook left behind, no retrace per call (issue 9, finding 7).

The 1000-call figure is in benchmarks/results/memory_<host>.md (``benchmarks/bench_memory.py``);
here a shorter run checks the causes directly (hooks, traced functions) and the RSS
loosely, and a deliberately leaky caller shows the checks would catch a leak.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import os

import numpy as np
import pytest

import gradsight as gs

BATCHES = (1, 2, 3)
CALLS = 90  # after warm-up; every (method, batch size) pair 5 times
MB = 1024 * 1024


def rss() -> int:
    """Resident set size of this process, bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _jobs(batches=BATCHES):
    return itertools.cycle([(m, b) for b in batches for m in gs.METHODS])


def _opts(method):
    return {"samples": 3, "seed": 0} if method == "smoothgrad" else {}


def _torch_hooks(model):
    import torch

    per_module = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                     + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())
    glob = torch.nn.modules.module
    return per_module + len(glob._global_forward_hooks) + len(glob._global_forward_pre_hooks) + len(
        glob._global_backward_hooks)


def _settle() -> None:
    """Collect garbage and hand freed heap pages back (glibc ``malloc_trim``), so RSS counts live
    memory, not the allocator's free lists (which grow with how fragmented earlier tests left them)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS as it is
        pass


def _run(call, x, calls, batches=BATCHES):
    jobs = _jobs(batches)
    for _ in range(2 * len(gs.METHODS) * len(batches)):  # warm-up: every pair twice
        m, b = next(jobs)
        call(x[:b], m)
    _settle()
    before = rss()
    for _ in range(calls):
        m, b = next(jobs)
        call(x[:b], m)
    _settle()
    return rss() - before


def test_torch_many_calls_leave_no_hook_and_flat_memory():
    torch = pytest.importorskip("torch")
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import generate, preprocess

    model = load_demo_model()
    x = torch.from_numpy(preprocess(generate(3, seed=2).images))
    hooks = _torch_hooks(model)
    grown = _run(lambda xb, m: gs.explain(model, xb, method=m, **_opts(m)), x, CALLS)
    assert _torch_hooks(model) == hooks
    assert grown < 50 * MB, f"RSS grew {grown / MB:.1f} MB over {CALLS} calls"

    # the check catches a caller that leaks one hook per call
    def leaky(xb, m):
        model.relu4.register_forward_hook(lambda *a: None)
        return gs.explain(model, xb, method=m, **_opts(m))

    _run(leaky, x, 3)
    assert _torch_hooks(model) > hooks

    # and the RSS check catches a caller that keeps 2 MB per call alive
    kept = []
    grown = _run(lambda xb, m: kept.append(np.ones(MB // 4)) or gs.explain(model, xb, method=m, **_opts(m)), x, 30)
    assert grown > 50 * MB


def test_keras_many_calls_do_not_retrace_and_keep_memory_flat():
    pytest.importorskip("tensorflow")
    from gradsight.backends.keras import trace
    from gradsight.demo.keras_model import load_keras_demo_model
    from gradsight.demo.shapes import generate, preprocess

    model = load_keras_demo_model()
    x = preprocess(generate(4, seed=2).images, layout="NHWC")

    def call(xb, m):
        return gs.explain(model, xb, method=m, **_opts(m))

    batches = BATCHES[:2]  # each (method, batch size) is one trace of a few seconds
    _run(call, x, 0, batches)  # warm-up only: every (method, batch size) traced once
    traced = trace.traces(model)
    assert traced > 0
    grown = _run(call, x, 60, batches)
    assert trace.traces(model) == traced, "a call retraced its tf.function"
    assert grown < 50 * MB, f"RSS grew {grown / MB:.1f} MB over 60 calls"
    # the check catches a retrace: a batch size outside the warmed-up set traces again
    gs.explain(model, np.ascontiguousarray(x[:3]), method="saliency")
    assert trace.traces(model) > traced
