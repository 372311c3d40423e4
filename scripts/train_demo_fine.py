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

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_demo import fit, one_cycle_adam, save_and_report, seeded_data, training_parser

try:
    from gradsight.demo.fine_model import FINE_WEIGHTS_PATH, ShapesNetFine
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from gradsight.demo.fine_model import FINE_WEIGHTS_PATH, ShapesNetFine


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
    args = training_parser(__doc__, n_train=4000, epochs=3, lr=3e-3, out=FINE_WEIGHTS_PATH).parse_args(argv)
    t_start = time.perf_counter()
    gen, train, test = seeded_data(args)

    model = ShapesNetFine()
    trunk = freeze_trunk(model)
    print(f"ShapesNetFine: {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    opt, sched = one_cycle_adam([p for p in model.parameters() if p.requires_grad], args, len(train))
    fit(model, train, test, opt, sched, args.epochs, args.batch_size, gen, frozen=trunk)  # trunk BatchNorm: the demo's statistics
    return save_and_report(model, test, args.out, t_start)


if __name__ == "__main__":
    main()
