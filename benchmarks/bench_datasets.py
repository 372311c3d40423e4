"""Data-set jobs (``gradsight run``): throughput against a hand-written loop, flat memory, Ray overhead.

Reproduce (from the repository root):

    .venv/bin/python benchmarks/bench_datasets.py                 # full: 2,000 images, memory at 500 / 5,000
    .venv/bin/python benchmarks/bench_datasets.py --n 400 --mem-small 200 --mem-large 1500 --ray-n 200

What is measured, in one run:

1. **Throughput** of the local engine (``explain_dataset(engine="local")``: reader
   processes running as idle work, the model's threads shared with them when a trial
   of one thread fewer is faster, the per-batch explainer, the atomic npz + Parquet
   writer on its own thread, summary.md and class_means.png at the end) against a
   hand-written loop doing the same work in the plainest way: generate/read a batch of
   demo images, preprocess, ``gs.explain``, ``np.savez`` per batch. Grad-CAM and saliency,
   bundled PyTorch demo model, batch 32. The two are interleaved, best of ``--repeats``;
   ratio = loop time / job time (>= 0.9 is the goal; > 1 means the job is faster: its
   readers decoded images on cores the model left idle).
2. **Memory**: resident set size (RSS) of the job process after ``--mem-small`` images and
   after ``--mem-large`` images (Grad-CAM), sampled while it runs.
3. **Ray**: the same job on a local Ray (``ray.init`` done before timing; 1 actor) against
   the local engine; overhead per batch = (ray - local) / batches.

The report is printed and written to ``benchmarks/results/datasets_<host>.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import gradsight as gs
from gradsight.datasets import explain_dataset
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import image_at
from gradsight.demo.shapes import preprocess as demo_preprocess

BATCH = 32


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hand_loop(n: int, method: str, out: Path) -> float:
    """The plainest correct loop: read a batch, preprocess, explain, save."""
    t0 = time.perf_counter()
    model = load_demo_model()
    out.mkdir(parents=True, exist_ok=True)
    for b, start in enumerate(range(0, n, BATCH)):
        images = np.stack([image_at(i)[0] for i in range(start, min(n, start + BATCH))])
        exp = gs.explain(model, demo_preprocess(images), method=method)
        np.savez(out / f"batch-{b:05d}.npz", attributions=exp.attributions, heatmaps=exp.heatmaps.astype(np.float16))
    return time.perf_counter() - t0


def job(n: int, method: str, out: Path, **kw: object) -> float:
    t0 = time.perf_counter()
    explain_dataset("demo", f"demo:{n}", out, method, batch_size=BATCH, quiet=True, overwrite=True, **kw)
    return time.perf_counter() - t0


def throughput(n: int, repeats: int, tmp: Path) -> list[tuple[str, float, float, list[float]]]:
    """Per method: best loop time, best job time, and each round's ratio (loop / job)."""
    rows = []
    for method in ("gradcam", "saliency"):
        loop_t, job_t = [], []
        for r in range(repeats):
            loop_t.append(hand_loop(n, method, tmp / f"loop-{method}-{r}"))
            job_t.append(job(n, method, tmp / f"job-{method}-{r}"))
            shutil.rmtree(tmp / f"loop-{method}-{r}")
            shutil.rmtree(tmp / f"job-{method}-{r}")
            print(f"{method} round {r + 1}: loop {loop_t[-1]:.2f} s, job {job_t[-1]:.2f} s, "
                  f"ratio {loop_t[-1] / job_t[-1]:.2f} (load {os.getloadavg()[0]:.2f})", flush=True)
        rows.append((method, min(loop_t), min(job_t), [a / b for a, b in zip(loop_t, job_t)]))
    return rows


def memory(small: int, large: int, tmp: Path) -> tuple[float, float, float]:
    """RSS (MB) at the start of the job, after ``small`` images, after ``large`` images."""
    out = tmp / "memory"
    marks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            parts = len(list((out / ".state").glob("part-*.parquet"))) if (out / ".state").exists() else 0
            if parts * BATCH >= small and "small" not in marks:
                marks["small"] = rss_mb()
            time.sleep(0.05)

    start = rss_mb()
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    explain_dataset("demo", f"demo:{large}", out, "gradcam", batch_size=BATCH, quiet=True)
    marks["large"] = rss_mb()
    stop.set()
    watcher.join()
    return start, marks.get("small", float("nan")), marks["large"]


def ray_overhead(n: int, tmp: Path) -> tuple[float, float, float]:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t0
    try:
        job(n, "gradcam", tmp / "ray-warm", engine="ray", workers=1)  # first use: Ray Data warm-up
        ray_t = job(n, "gradcam", tmp / "ray", engine="ray", workers=1)
    finally:
        ray.shutdown()
    local_t = job(n, "gradcam", tmp / "local")
    return start, local_t, ray_t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images for the throughput runs (default 2000)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mem-small", type=int, default=500)
    ap.add_argument("--mem-large", type=int, default=5000)
    ap.add_argument("--ray-n", type=int, default=500, help="images for the Ray comparison (0: skip)")
    ap.add_argument("--out", help="report file (default benchmarks/results/datasets_<host>.md)")
    args = ap.parse_args()
    import torch

    host = socket.gethostname().split(".")[0]
    load = os.getloadavg()[0]
    print(f"load average at start {load:.2f}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gs-bench-datasets-"))
    t_all = time.perf_counter()
    try:
        thr = throughput(args.n, args.repeats, tmp)
        mem = memory(args.mem_small, args.mem_large, tmp)
        ray_row = ray_overhead(args.ray_n, tmp) if args.ray_n else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "# gradsight data-set job benchmark",
        "",
        "Reproduce (from the repository root):",
        "",
        "    .venv/bin/python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "",
        f"- host: `{host}`, {os.cpu_count()} logical CPUs, load average at start {load:.2f}"
        + (" (**busy machine: other jobs shared the cores; ratios are of interleaved runs**)" if load > 1.0 else ""),
        f"- torch {torch.__version__}, gradsight {gs.__version__}, Python {platform.python_version()}",
        f"- load average at the end {os.getloadavg()[0]:.2f}; total wall time {time.perf_counter() - t_all:.0f} s",
        "",
        f"## Throughput, {args.n} demo images, batch {BATCH} (best of {args.repeats}, interleaved)",
        "",
        "| method | hand loop s | job s | loop img/s | job img/s | ratio (job speed / loop speed) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, loop_t, job_t, _ in thr:
        lines.append(f"| {method} | {loop_t:.2f} | {job_t:.2f} | {args.n / loop_t:.0f} | {args.n / job_t:.0f} | "
                     f"{loop_t / job_t:.2f} {'✓' if loop_t / job_t >= 0.9 else '✗'} |")
    lines += ["", "Each round's ratio (loop / job, the pair run back to back): "
              + "; ".join(f"{method} {', '.join(f'{r:.2f}' for r in rounds)}" for method, _, _, rounds in thr) + "."]
    start, small, large = mem
    lines += [
        "",
        "## Memory (Grad-CAM job, RSS of the process)",
        "",
        f"| at start | after {args.mem_small} images | after {args.mem_large} images | growth |",
        "|---:|---:|---:|---:|",
        f"| {start:.0f} MB | {small:.0f} MB | {large:.0f} MB | {large - small:+.0f} MB "
        f"{'✓' if large - small <= 100 else '✗'} |",
    ]
    if ray_row:
        ray_start, local_t, ray_t = ray_row
        batches = -(-args.ray_n // BATCH)
        lines += [
            "",
            f"## Ray engine vs local engine ({args.ray_n} images, Grad-CAM, 1 actor, batch {BATCH})",
            "",
            "| ray.init s | local s | ray s | local img/s | ray img/s | overhead per batch |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {ray_start:.1f} | {local_t:.2f} | {ray_t:.2f} | {args.ray_n / local_t:.0f} | {args.ray_n / ray_t:.0f} | "
            f"{(ray_t - local_t) / batches * 1000:.0f} ms |",
            "",
            "The Ray time includes starting the actor (loading the model) and Ray Data's planning; "
            "on two cores the actor and the decode tasks share the CPUs the local engine has to itself.",
        ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"datasets_{host}.md"
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
