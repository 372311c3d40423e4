"""Deletion + insertion against a forward-only floor, measured in one run.

    python benchmarks/bench_evaluate.py                        # small CNN, 8 images, 224x224, 100 steps (~2-3 min)
    python benchmarks/bench_evaluate.py --model resnet50 --repeats 2   # ResNet-50 (~25-40 min on 2 cores)
    python benchmarks/bench_evaluate.py --size 64 --images 2 --steps 10 --repeats 1   # quick check

Deletion (zeros) and insertion (RISE blur) of ``--images`` images with ``--steps`` steps
each send ``images x (steps + 1)`` images per metric through ``gs.predict`` in chunks of
``--batch`` (the clean image is one point of each curve; its forward pass is the one that
also picks the explained class). The *floor* sends the same number of images in the same
chunk sizes through the bare model (``torch.no_grad()``, no perturbation, no gradsight).
Runs alternate (metrics, floor, floor, metrics, ...) so both see the same machine load;
the ratio printed is the median of the per-repeat ratios (and the ratio of medians).

``--model small`` (default) is a plain 5-stage CNN at 224x224 (~0.13 GMAC per image) in
eval mode, random weights: its forward pass is ~30x cheaper than ResNet-50's, so
gradsight's per-image host work (ranking, building the perturbed images, softmax, host
copies) weighs ~30x more in its ratio than in ResNet-50's: the harder test, and it runs
in a few minutes. ``--model resnet50`` is torchvision's ResNet-50 layout (``models.py``).

``host work`` is the same deletion + insertion on a near-free model (global average
pool and a linear layer): what gradsight itself costs per perturbed image.
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
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import resnet50

from gradsight import evaluate as ev


def small_cnn(num_classes: int = 1000, seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU stages 24/48/96/192/256 channels, 2x downsampling each, GAP, linear."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    chans = [3, 24, 48, 96, 192, 256]
    for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
        layers += [nn.Conv2d(a, b, 3, stride=2 if i == 0 else 1, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        if 0 < i < 4:
            layers.append(nn.MaxPool2d(2))
        if i == 0:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], num_classes))


def near_free(num_classes: int = 1000) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("small", "resnet50"), default="small")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = (resnet50() if args.model == "resnet50" else small_cnn()).eval()
    rng = np.random.default_rng(0)
    n, s = args.images, args.size
    x = rng.standard_normal((n, 3, s, s)).astype(np.float32)
    maps = ev.random_maps(n, s, s, seed=0)
    step = -(-s * s // args.steps)  # pixels per step: exactly `steps` steps
    per_metric = n * (-(-s * s // step) + 1)
    # the metric's batches: the n clean images in one, then the perturbed ones in chunks of --batch
    chunks = [n] + [min(args.batch, per_metric - n - b) for b in range(0, per_metric - n, args.batch)]
    ref = torch.from_numpy(rng.standard_normal((max(chunks), 3, s, s)).astype(np.float32))

    def metrics(m: nn.Module = model) -> None:
        ev.deletion(m, x, maps, step=step, batch_size=args.batch)
        ev.insertion(m, x, maps, step=step, batch_size=args.batch)

    def floor() -> None:  # the same images per chunk, twice (deletion and insertion), bare model
        with torch.no_grad():
            for _ in range(2):
                for c in chunks:
                    model(ref[:c])

    print(f"{args.model} (random weights), {n} images {s}x{s}, {per_metric // n - 1} steps of {step} px "
          f"({per_metric} forwards per metric, batches {chunks[0]} + {len(chunks) - 1} of <= {args.batch}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    with torch.no_grad():  # warm-up: allocator and kernels
        model(ref)
    metrics(near_free())
    t_m, t_f, t_h = [], [], []
    for r in range(args.repeats):
        pair = [(t_m, metrics), (t_f, floor)]
        for times, fn in pair if r % 2 == 0 else pair[::-1]:
            times.append(_time(fn))
        t_h.append(_time(lambda: metrics(near_free())))
        print(f"  repeat {r + 1}: metrics {t_m[-1]:7.2f} s  floor {t_f[-1]:7.2f} s  ratio {t_m[-1] / t_f[-1]:5.3f}x  "
              f"host work {t_h[-1]:5.2f} s", flush=True)  # fmt: skip
    m, f, h = (statistics.median(v) for v in (t_m, t_f, t_h))
    ratios = [a / b for a, b in zip(t_m, t_f)]
    print(f"  deletion + insertion {m:8.2f} s (median)")
    print(f"  floor (bare model)   {f:8.2f} s (median)")
    print(f"  ratio {statistics.median(ratios):5.3f}x (median of per-repeat ratios; ratio of medians {m / f:5.3f}x)")
    print(f"  host work {h:6.2f} s = {h / (2 * per_metric) * 1e3:.2f} ms per perturbed image "
          f"(deletion + insertion on a near-free model: substrate, ranking, masking, softmax, copies)")  # fmt: skip
    img = x[0]
    t0 = time.perf_counter()
    pcts = range(10, 100, 10)
    ranks = ev.pixel_ranks(maps[:1])[0].reshape(s, s)
    for pct in pcts:
        ev.impute(img, ranks < pct / 100 * s * s, rng=np.random.default_rng(0))
    print(f"  ROAD imputation: {(time.perf_counter() - t0) / len(pcts) * 1e3:.1f} ms per image and percentage "
          f"(one sparse solve, mean over 10..90%)")  # fmt: skip
    print(f"  total wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
