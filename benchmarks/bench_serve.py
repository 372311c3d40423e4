"""gradsight serve: start-up time, explanation latency over HTTP, concurrency, and memory over 1,000 requests.

Starts the real server (``python -m gradsight serve --model demo --port P``) on 127.0.0.1 and
talks to it with httpx, as the page does:

- start-up: from the command to the first ``/api/health`` answer;
- latency per method on the demo images: the first request for an (image, method) (computed)
  and a repeat (served from the cache), medians over the 10 demo images; the issue's target is
  an explanation on screen within ~300 ms;
- 16 concurrent requests against the same 16 sent one after another (a fresh server each, so
  nothing is cached): the per-model lock serialises the model, so the ratio shows the overhead;
- memory: the server's resident set size (VmRSS) while 1,000 explanations of distinct uploaded
  images are requested (every one a cache miss; the caches are bounded, so RSS must flatten).

Run from the repository root (report printed and written to benchmarks/results/serve_<host>.md):

    .venv/bin/python benchmarks/bench_serve.py            # about 2-4 minutes on 2 cores
    .venv/bin/python benchmarks/bench_serve.py --requests 200   # shorter memory run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

METHODS = ["saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "gradsight", "serve", "--model", "demo", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.HTTPError:
            time.sleep(0.05)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def png_b64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def timed_post(client: httpx.Client, body: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = client.post("/api/explain", json=body)
    dt = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return dt, r.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests in the memory run (default 1000)")
    parser.add_argument("--out", help="report file (default benchmarks/results/serve_<host>.md)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    lines: list[str] = []
    t_all = time.perf_counter()

    proc, url, startup = start()
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            rows = []
            for method in METHODS:
                first, repeat, compute = [], [], []
                for i in range(10):
                    dt, r = timed_post(c, {"image_ref": f"demo/{i}", "method": method})
                    first.append(dt)
                    compute.append(r["compute_ms"])
                    dt, r = timed_post(c, {"image_ref": f"demo/{i}", "method": method})
                    assert r["cached"]
                    repeat.append(dt)
                rows.append((method, statistics.median(first), max(first), statistics.median(compute),
                             statistics.median(repeat)))
        first_rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()

    # concurrency: 16 distinct requests, sequential on one fresh server, concurrent on another
    bodies = [{"image_ref": f"demo/{k % 10}", "method": METHODS[k % len(METHODS)], "target": k % 5}
              for k in range(16)]

    async def burst(url: str) -> float:
        async with httpx.AsyncClient(base_url=url, timeout=120) as ac:
            t0 = time.perf_counter()
            rs = await asyncio.gather(*(ac.post("/api/explain", json=b) for b in bodies))
            assert all(r.status_code == 200 for r in rs)
            return time.perf_counter() - t0

    times = {}
    for mode in ("sequential", "concurrent"):
        proc, url, _ = start()
        try:
            with httpx.Client(base_url=url, timeout=120) as c:
                timed_post(c, {"image_ref": "demo/0", "method": "gradcam", "target": 4, "cmap": "gray"})  # warm-up
                if mode == "sequential":
                    t0 = time.perf_counter()
                    for b in bodies:
                        timed_post(c, b)
                    times[mode] = time.perf_counter() - t0
                else:
                    times[mode] = asyncio.run(burst(url))
        finally:
            proc.terminate()
            proc.wait()

    # memory over many distinct uploads
    proc, url, _ = start()
    marks = []
    rng = np.random.default_rng(0)
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            marks.append((0, rss_mb(proc.pid)))
            step = max(args.requests // 4, 1)
            for k in range(1, args.requests + 1):
                pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                timed_post(c, {"image": png_b64(pixels), "method": METHODS[k % len(METHODS)],
                               **({"options": {"samples": 8}} if METHODS[k % len(METHODS)] == "smoothgrad" else {})})
                if k % step == 0:
                    marks.append((k, rss_mb(proc.pid)))
    finally:
        proc.terminate()
        proc.wait()

    import torch

    from gradsight import __version__

    lines += [
        "# gradsight serve benchmark",
        "",
        "Reproduce (from the repository root):",
        "",
        f"    .venv/bin/python benchmarks/bench_serve.py{'' if args.requests == 1000 else f' --requests {args.requests}'}",
        "",
        f"- host: `{platform.node()}`, {os.cpu_count()} logical CPUs, load average at start {load:.2f}"
        + (" (**busy machine: timings are inflated**)" if load > 0.5 else ""),
        f"- gradsight {__version__}, torch {torch.__version__}, Python {platform.python_version()}; the demo model "
        "(PyTorch, 64x64 inputs); wall time of the whole run "
        f"{time.perf_counter() - t_all:.0f} s",
        f"- start-up (`gradsight serve --model demo` until `/api/health` answers): **{startup:.1f} s**",
        "",
        "Latency of `POST /api/explain` over HTTP on 127.0.0.1, ms, over the 10 demo images "
        "(first = computed, the model's time in `compute` column; repeat = from the cache). "
        "SmoothGrad uses its default 50 samples.",
        "",
        "| method | first, median | first, max | compute, median | repeat (cached), median | within 300 ms |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for method, med, worst, comp, rep in rows:
        lines.append(f"| {method} | {med:.1f} | {worst:.1f} | {comp:.1f} | {rep:.1f} | {'yes' if med <= 300 else 'no'} |")
    ratio = times["concurrent"] / times["sequential"]
    lines += [
        "",
        f"16 distinct requests: sequential {times['sequential'] * 1000:.0f} ms, 16 concurrent "
        f"{times['concurrent'] * 1000:.0f} ms (ratio {ratio:.2f}; the model runs one request at a time under its lock, "
        "decoding and drawing overlap).",
        "",
        f"Memory (server VmRSS, MB) over {args.requests} explanations of distinct random 64x64 uploads "
        f"(caches: 256 explanations, 64 uploads); RSS after the latency run: {first_rss:.0f} MB.",
        "",
        "| requests | " + " | ".join(str(k) for k, _ in marks) + " |",
        "|---|" + "---:|" * len(marks),
        "| RSS MB | " + " | ".join(f"{m:.0f}" for _, m in marks) + " |",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out or Path(__file__).parent / "results" / f"serve_{platform.node() or 'host'}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()
