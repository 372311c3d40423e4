"""Resident memory over 1000 consecutive ``gs.explain`` calls, PyTorch and Keras (issue 9).

Each framework's demo model runs every method in turn on batches of 1, 2 and 3 images
(SmoothGrad with 8 samples), 1000 calls after a warm-up of two rounds of every
(method, batch size) pair. RSS is read from /proc every 50 calls. The report gives the
growth after warm-up, the hooks left on the PyTorch model and the Keras tf.function
traces made after warm-up (0 means no retrace).

    PYTHONPATH=src python benchmarks/bench_memory.py [--calls 1000] [--only torch|keras] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

import gradsight as gs

BATCHES = (1, 2, 3)
MB = 1024 * 1024


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(model, x, calls: int) -> tuple[list[tuple[int, float]], float]:
    jobs = itertools.cycle([(m, b) for b in BATCHES for m in gs.METHODS])
    opts = {"smoothgrad": {"samples": 8, "seed": 0}}
    for _ in range(2 * len(gs.METHODS) * len(BATCHES)):
        m, b = next(jobs)
        gs.explain(model, x[:b], method=m, **opts.get(m, {}))
    gc.collect()
    base = rss()
    curve = [(0, 0.0)]
    t0 = time.perf_counter()
    for i in range(1, calls + 1):
        m, b = next(jobs)
        gs.explain(model, x[:b], method=m, **opts.get(m, {}))
        if i % 50 == 0:
            gc.collect()
            curve.append((i, (rss() - base) / MB))
    return curve, time.perf_counter() - t0


def torch_case(calls: int) -> dict:
    import torch

    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import generate, preprocess

    torch.set_num_threads(1)
    model = load_demo_model()

    def hooks() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())

    before = hooks()
    curve, secs = run(model, preprocess(generate(3, seed=2).images), calls)
    return {"curve": curve, "secs": secs, "extra": f"hooks left on the model: {hooks() - before}"}


def keras_case(calls: int) -> dict:
    from gradsight.backends.keras import trace
    from gradsight.demo.keras_model import load_keras_demo_model
    from gradsight.demo.shapes import generate, preprocess

    model = load_keras_demo_model()
    x = preprocess(generate(3, seed=2).images, layout="NHWC")
    jobs_traced: list[int] = []
    curve, secs = run(model, x, 0)
    jobs_traced.append(trace.traces(model))
    curve, secs = run(model, x, calls)
    return {"curve": curve, "secs": secs, "extra": f"tf.function traces after warm-up: {trace.traces(model) - jobs_traced[0]}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--only", choices=("torch", "keras"), action="append")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    host = socket.gethostname().split(".")[0]
    cases = {"torch": torch_case, "keras": keras_case}
    lines = [
        "# Memory over consecutive explain calls",
        "",
        f"Command: `PYTHONPATH=src python benchmarks/bench_memory.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        (f"Host: {host}, {platform.machine()}, {os.cpu_count()} CPUs, load average at start "
         f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, numpy {np.__version__}"),
        "",
        (f"{args.calls} calls after warm-up: every method in turn on batches of {', '.join(map(str, BATCHES))} "
         "images (the demo models, 64x64; SmoothGrad 8 samples). RSS growth after warm-up, MB:"),
        "",
    ]
    results = {}
    for name in args.only or list(cases):
        results[name] = cases[name](args.calls)
        print(name, results[name]["extra"], results[name]["curve"][-1], flush=True)
    steps = [c for c, _ in next(iter(results.values()))["curve"]]
    lines.append("| calls | " + " | ".join(results) + " |")
    lines.append("|---" * (len(results) + 1) + "|")
    for k, c in enumerate(steps):
        if c % 100 == 0:
            lines.append(f"| {c} | " + " | ".join(f"{r['curve'][k][1]:+.1f}" for r in results.values()) + " |")
    lines.append("")
    for name, r in results.items():
        peak = max(v for _, v in r["curve"])
        lines.append(f"- {name}: final {r['curve'][-1][1]:+.1f} MB, highest {peak:+.1f} MB; {r['extra']}; "
                     f"{r['secs'] / args.calls * 1000:.0f} ms per call")
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or Path(__file__).parent / "results" / f"memory_{host}.md"
    out.write_text(text)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
