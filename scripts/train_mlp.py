"""Train the ``demo-mlp`` (Linear(2, 8) - ReLU - Linear(8, 2)) on two moons; write its weights.

Usage (from the repository root)::

    .venv/bin/python scripts/train_mlp.py                  # writes src/gradsight/demo/weights/mlp_moons.npz
    .venv/bin/python scripts/train_mlp.py --out /tmp/m.npz # elsewhere

Training points are ``make_moons(400, seed=0)``, test points ``make_moons(400, seed=1)``.
Full-batch Adam, seeded, CPU; takes about a second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

try:
    from gradsight.demo.mlp import HIDDEN, WEIGHTS_PATH, build_torch_mlp, make_moons
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from gradsight.demo.mlp import HIDDEN, WEIGHTS_PATH, build_torch_mlp, make_moons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="weights file (.npz)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x, y = make_moons(400, seed=0)
    xt, yt = make_moons(400, seed=1)
    model = build_torch_mlp(HIDDEN)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    loss_fn = nn.CrossEntropyLoss()
    xb, yb = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (model(xb).argmax(1) == yb).float().mean().item()
        test_acc = (model(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean()
    print(f"{args.steps} steps in {time.perf_counter() - t0:.1f} s: loss {loss.item():.4f}, "
          f"train accuracy {acc:.3f}, test accuracy {test_acc:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **{k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()})
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
