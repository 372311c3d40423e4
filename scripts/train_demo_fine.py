"""Train the finer demo CNN (``ShapesNetFine``, last stage 16x16) and write its bundled weights.

Usage (from the repository root)::

    .venv/bin/python scripts/train_demo_fine.py          # writes src/gradsight/demo/weights/shapes_net_fine.pt
    .venv/bin/python scripts/train_demo_fine.py --epochs 1 --n-train 500 --out /tmp/w.pt   # smoke run

Same data, augmentation, optimiser and seeds as ``scripts/train_demo.py`` (train images
``generate(n_train, seed=0)``, test ``generate(n_test, seed=1)``). The first three
conv blocks (``conv1``..``bn3``, the same shapes as the demo CNN's) start from the bundled
demo weights and stay frozen (BatchNorm in eval mode); ``conv4``, ``conv5`` and the
classifier are trained. That keeps training to a few minutes on 2 CPU cores; the saved
``state_dict`` holds every weight, so loading needs nothing else.
CPU-only, 2 threads by default.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_demo import TEST_SEED, TRAIN_SEED, fit, save_and_report

try:
    from gradsight.demo.fine_model import FINE_WEIGHTS_PATH, ShapesNetFine
    from gradsight.demo.shapes import generate
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from gradsight.demo.fine_model import FINE_WEIGHTS_PATH, ShapesNetFine
    from gradsight.demo.shapes import generate


TRUNK = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")


def freeze_trunk(model: nn.Module) -> list[nn.Module]:
    """Copy the demo CNN's first three blocks into ``model`` and freeze them; return those modules."""
    from gradsight.demo.model import load_demo_model

    demo = load_demo_model()
    trunk = []
    for name in TRUNK:
        mine, theirs = getattr(model, name), getattr(demo, name)
        mine.load_state_dict(theirs.state_dict())
        mine.requires_grad_(False)
        trunk.append(mine)
    return trunk


def main(argv: list[str] | None = None) -> float:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=FINE_WEIGHTS_PATH)
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    gen = torch.Generator().manual_seed(0)
    train = generate(args.n_train, seed=TRAIN_SEED)
    test = generate(args.n_test, seed=TEST_SEED)
    print(f"generated {len(train)} train + {len(test)} test images in {time.perf_counter() - t_start:.1f}s", flush=True)

    model = ShapesNetFine()
    trunk = freeze_trunk(model)
    print(f"ShapesNetFine: {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    steps = (len(train) + args.batch_size - 1) // args.batch_size
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps, pct_start=0.2)
    fit(model, train, test, opt, sched, args.epochs, args.batch_size, gen, frozen=trunk)  # trunk BatchNorm: the demo's statistics

    acc = save_and_report(model, test, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB); wall time {time.perf_counter() - t_start:.1f}s"
    )
    return acc


if __name__ == "__main__":
    main()
