"""Train the demo ``ShapesViT`` on the shapes benchmark and write the bundled weights.

Usage (from the repository root)::

    .venv/bin/python scripts/train_demo_vit.py      # writes src/gradsight/demo/weights/shapes_vit.pt
    .venv/bin/python scripts/train_demo_vit.py --epochs 1 --n-train 500 --out /tmp/v.pt   # smoke run

The same data, augmentation (flips, 90-degree rotations) and seeds as
``scripts/train_demo.py`` (train ``generate(n_train, seed=0)``, test ``generate(n_test,
seed=1)``); AdamW with a one-cycle schedule. Seeded and CPU-only.

The ViT is a hybrid (its patches come from a CNN feature map, as the hybrid ViTs of
Dosovitskiy et al. 2021, whose ResNet stems were pretrained): its stem starts from the
first three conv blocks of the bundled demo CNN (``shapes_net.pt``, same layer sizes) and
trains at a tenth of the learning rate. From scratch the transformer sat at chance level
for the first epochs here; with the trained stem it learns in a few minutes.
``--from-scratch`` skips the transfer.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn
from train_demo import fit, save_and_report, seeded_data, training_parser  # scripts/ is sys.path[0]

try:
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.vit import VIT_WEIGHTS_PATH, ShapesViT
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.vit import VIT_WEIGHTS_PATH, ShapesViT

# the demo CNN's first three conv blocks -> the ViT stem's Sequential indices
STEM_FROM_CNN = {"conv1": "0", "bn1": "1", "conv2": "4", "bn2": "5", "conv3": "8", "bn3": "9"}


def stem_from_demo_cnn(model: ShapesViT) -> None:
    """Copy the bundled demo CNN's conv1..bn3 weights and BatchNorm statistics into ``model``'s stem."""
    cnn = load_demo_model().state_dict()
    state = {f"{STEM_FROM_CNN[k.split('.')[0]]}.{k.split('.', 1)[1]}": v
             for k, v in cnn.items() if k.split(".")[0] in STEM_FROM_CNN}
    model.patch_embed.stem.load_state_dict(state)


def main(argv: list[str] | None = None) -> float:
    # one thread by default: 2 threads on a busy 2-core machine ran 10x slower
    parser = training_parser(__doc__, n_train=4000, epochs=4, lr=1e-3, out=VIT_WEIGHTS_PATH, threads=1)
    parser.add_argument("--stem-lr-factor", type=float, default=0.1)
    parser.add_argument("--from-scratch", action="store_true", help="random stem instead of the demo CNN's")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    gen, train, test = seeded_data(args)

    model = ShapesViT()
    if not args.from_scratch:
        stem_from_demo_cnn(model)
    print(f"ShapesViT: {sum(p.numel() for p in model.parameters())} parameters; stem "
          f"{'random' if args.from_scratch else 'from the demo CNN'}", flush=True)
    steps_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        stem = name.startswith("patch_embed.stem.") and not args.from_scratch
        groups.setdefault((stem, p.ndim > 1 and "token" not in name and "pos_embed" not in name), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": 0.05 if decay else 0.0,
                              "lr": args.lr * (args.stem_lr_factor if stem else 1.0)}
                             for (stem, decay), ps in groups.items()])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=args.epochs * steps_per_epoch, pct_start=0.1)
    fit(model, train, test, opt, sched, args.epochs, args.batch_size, gen, clip=1.0)
    return save_and_report(model, test, args.out, t_start)


if __name__ == "__main__":
    main()
