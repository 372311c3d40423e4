"""What k targets per image cost: top-k against one class, measured in one run.

    python benchmarks/bench_targets.py                      # ResNet-50, 224x224, batch 2, k = 5
    python benchmarks/bench_targets.py --model cifar --batch 16

For each method the same batch is explained with ``target=None`` (top-1) and with
``target=gs.targets.TopK(k)``, alternating the two so both see the same machine load;
the median of ``--repeats`` timings of each is reported, and their ratio. ``TopK``
runs one forward pass and one batched backward pass (``torch.autograd.grad(...,
is_grads_batched=True)``); "in a loop" is the same with k backward passes on the
retained graph instead; "k calls" is what a user would otherwise do: k separate
explanations. Grad-CAM's backward stops at the layer, so top-k Grad-CAM costs about
one forward pass more than nothing; guided backprop's backward runs through the whole
network k times (batched).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import cifar_resnet, resnet50  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.backends.torch import looped_backward  # noqa: E402

CLOCK = time.perf_counter  # --clock cpu: time.process_time (with --threads 1, for a busy machine)


def _time(fn) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("resnet50", "cifar"), default="resnet50")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default="gradcam,guided_backprop")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only-topk", action="store_true", help="time top-1 and top-k only (no loop, no k calls)")
    ap.add_argument("--steps", type=int, default=None, help="integrated_gradients' steps (default: the method's)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: process_time, for a busy machine")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)

    model, size = (resnet50(), 224) if args.model == "resnet50" else (cifar_resnet(), 32)
    x = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    top = gs.targets.TopK(args.k)
    print(f"{args.model}, batch {args.batch}, {size}x{size}, k = {args.k}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}, clock {args.clock}, load average {os.getloadavg()[0]:.1f}")
    for method in args.methods.split(","):
        opts = {"steps": args.steps} if method == "integrated_gradients" and args.steps else {}
        run_one = lambda: gs.explain(model, x, method, target=None, **opts)  # noqa: E731
        run_top = lambda: gs.explain(model, x, method, target=top, **opts)  # noqa: E731
        classes = gs.explain(model, x, method, target=top, **opts).targets  # warm-up, and the classes for "k calls"

        def run_calls() -> None:
            for j in range(args.k):
                gs.explain(model, x, method, target=classes[:, j].tolist(), **opts)

        def run_looped() -> None:
            with looped_backward():
                run_top()

        run_one()
        one, topk, looped, calls = [], [], [], []
        for _ in range(args.repeats):
            one.append(_time(run_one))
            topk.append(_time(run_top))
            if not args.only_topk:
                looped.append(_time(run_looped))
                calls.append(_time(run_calls))
        t1, tk = statistics.median(one), statistics.median(topk)
        extra = "" if args.only_topk else (
            f"   (k backward passes in a loop: {statistics.median(looped) / t1:4.2f}x; "
            f"{args.k} calls: {statistics.median(calls) / t1:4.2f}x)"
        )
        print(f"  {method:<20} one class {t1 * 1e3:8.1f} ms   top-{args.k} {tk * 1e3:8.1f} ms   "
              f"ratio {tk / t1:4.2f}x{extra}", flush=True)


if __name__ == "__main__":
    main()
