"""Deletion + insertion against a forward-only floor, measured in one run.

    python benchmarks/bench_evaluate.py                          # ResNet-50, 8 images, 224x224, 100 steps
    python benchmarks/bench_evaluate.py --size 64 --images 2 --steps 10 --repeats 1   # quick check

The model is torchvision's ResNet-50 layout with random weights (``models.py``), in eval
mode. Deletion (zeros) and insertion (RISE blur) of ``--images`` images with ``--steps``
steps each send ``images x (steps + 1)`` perturbed images per metric through
``gs.predict`` in chunks of ``--batch``. The *floor* sends the same number of images in
the same chunk sizes through the bare model (``torch.no_grad()``, no perturbation, no
gradsight); a second floor does the same through ``gs.predict``. The runs alternate so
all see the same machine load; medians of ``--repeats`` are reported with their ratio.
ROAD's imputation is costed separately: one sparse solve per image and percentage.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import resnet50

import gradsight as gs
from gradsight import evaluate as ev


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet50().eval()
    rng = np.random.default_rng(0)
    n, s = args.images, args.size
    x = rng.standard_normal((n, 3, s, s)).astype(np.float32)
    maps = ev.random_maps(n, s, s, seed=0)
    step = -(-s * s // args.steps)  # pixels per step: exactly `steps` steps
    per_metric = n * (-(-s * s // step) + 1)
    chunks = [min(args.batch, per_metric - b) for b in range(0, per_metric, args.batch)]
    ref = torch.from_numpy(rng.standard_normal((args.batch, 3, s, s)).astype(np.float32))

    def metrics() -> None:
        ev.deletion(model, x, maps, step=step, batch_size=args.batch)
        ev.insertion(model, x, maps, step=step, batch_size=args.batch)

    def floor() -> None:  # the same images per chunk, twice (deletion and insertion), bare model
        with torch.no_grad():
            for _ in range(2):
                for c in chunks:
                    model(ref[:c])

    def floor_predict() -> None:
        for _ in range(2):
            for c in chunks:
                gs.predict(model, ref[:c].numpy())

    print(f"ResNet-50 (random weights), {n} images {s}x{s}, {per_metric // n - 1} steps of {step} px "
          f"({per_metric} forwards per metric), batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")  # fmt: skip
    metrics()  # warm-up
    t_m, t_f, t_p = [], [], []
    for _ in range(args.repeats):
        t_m.append(_time(metrics))
        t_f.append(_time(floor))
        t_p.append(_time(floor_predict))
    m, f, p = (statistics.median(v) for v in (t_m, t_f, t_p))
    print(f"  deletion + insertion {m:8.2f} s")
    print(f"  floor (bare model)   {f:8.2f} s   ratio {m / f:5.3f}x")
    print(f"  floor (gs.predict)   {p:8.2f} s   ratio {m / p:5.3f}x")
    img = x[0]
    t0 = time.perf_counter()
    pcts = range(10, 100, 10)
    for pct in pcts:
        ev.impute(img, ev.pixel_ranks(maps[:1])[0].reshape(s, s) < pct / 100 * s * s, rng=np.random.default_rng(0))
    print(f"  ROAD imputation: {(time.perf_counter() - t0) / len(pcts) * 1e3:.1f} ms per image and percentage "
          f"(one sparse solve, mean over 10..90%)")  # fmt: skip


if __name__ == "__main__":
    main()
