"""Fine-tune the demo CNN with a localisation signal and write ``demo-loc``'s bundled weights.

Usage (from the repository root)::

    .venv/bin/python scripts/train_demo_loc.py          # writes src/gradsight/demo/weights/shapes_net_loc.pt
    .venv/bin/python scripts/train_demo_loc.py --epochs 1 --n-train 500 --out /tmp/w.pt   # smoke run

``demo-loc`` is the demo CNN (:class:`~gradsight.demo.model.ShapesNet`, same
architecture) started from the bundled demo weights and trained further on the same
data with two terms:

- the demo's classification loss (cross-entropy, label smoothing 0.05), and
- a *localisation* term on the class activation map of the true class at ``relu4``,
  ``cam = sum_k W[y, k] * relu4_k`` (8x8; on this GAP + linear network Grad-CAM's map is
  ``ReLU(cam) / 64``): the spatial cross-entropy between ``softmax(cam)`` over the 64
  cells and the shape mask's share of each cell (the mask average-pooled to 8x8,
  normalised to sum 1). It asks the map to put its mass, and so its peak, where the
  shape covers the most of a cell, instead of on the most class-specific corner.

The masks are the generator's own (``generate(...).masks``), augmented with the images
(the same flips and transposes). Seeds, data (train ``generate(n, seed=0)``, test
``generate(n, seed=1)``), optimiser and schedule as ``scripts/train_demo.py``.
Prints the test accuracy and a pointing-game check written here (upsampled CAM's
maximum on the mask, tolerance 0) per epoch. CPU-only, 2 threads by default.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_demo import (
    augment,
    one_cycle_adam,
    save_and_report,
    seeded_data,
    to_tensor,
    training_parser,
    write_keras_twin,
)

try:
    from gradsight.demo.model import LOC_WEIGHTS_PATH, ShapesNet, load_demo_model
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from gradsight.demo.model import LOC_WEIGHTS_PATH, ShapesNet, load_demo_model


def features_and_logits(model: ShapesNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``relu4``'s (N, 64, 8, 8) output and the logits: ``ShapesNet.forward`` step by step."""
    x = model.pool1(model.relu(model.bn1(model.conv1(x))))
    x = model.pool2(model.relu(model.bn2(model.conv2(x))))
    x = model.pool3(model.relu(model.bn3(model.conv3(x))))
    a = model.relu4(model.bn4(model.conv4(x)))
    return a, model.classifier(torch.flatten(model.gap(a), 1))


def class_map(model: ShapesNet, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The (N, 8, 8) class activation map ``sum_k W[y, k] a_k`` of classes ``y``."""
    return torch.einsum("nkhw,nk->nhw", a, model.classifier.weight[y])


def localisation_loss(cam: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Spatial cross-entropy of ``softmax(cam)`` against the mask's share of each cell."""
    cover = F.adaptive_avg_pool2d(masks[:, None], cam.shape[-2:]).flatten(1)
    q = cover / cover.sum(1, keepdim=True).clamp_min(1e-6)
    return -(q * F.log_softmax(cam.flatten(1), dim=1)).sum(1).mean()


@torch.no_grad()
def pointing(model: ShapesNet, images: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> float:
    """Hit rate at tolerance 0: the bilinearly upsampled ReLU(CAM)'s first maximum on the mask."""
    model.eval()
    hits = 0
    for i in range(0, len(images), 250):
        a, _ = features_and_logits(model, to_tensor(images[i : i + 250]))
        cam = class_map(model, a, torch.from_numpy(labels[i : i + 250])).clamp_min(0)
        up = F.interpolate(cam[:, None], size=images.shape[1:3], mode="bilinear", align_corners=False)
        peak = up.flatten(1).argmax(1).numpy()
        m = masks[i : i + 250].reshape(len(peak), -1)
        hits += int(m[np.arange(len(peak)), peak].sum())
    return hits / len(images)


def main(argv: list[str] | None = None) -> float:
    parser = training_parser(__doc__, n_train=6000, epochs=8, lr=1e-3, out=LOC_WEIGHTS_PATH)
    parser.add_argument("--weight", type=float, default=2.0, help="weight of the localisation term")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    gen, train, test = seeded_data(args)

    model = load_demo_model()
    print(f"start (demo weights): pointing@0 {pointing(model, test.images, test.labels, test.masks):.3f}", flush=True)
    steps = (len(train) + args.batch_size - 1) // args.batch_size
    opt, sched = one_cycle_adam(model.parameters(), args, len(train))
    ce = nn.CrossEntropyLoss(label_smoothing=0.05)
    labels_t = torch.from_numpy(train.labels)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=gen)
        sums = np.zeros(3)
        for s in range(steps):
            idx = order[s * args.batch_size : (s + 1) * args.batch_size].numpy()
            mask = torch.from_numpy(train.masks[idx]).float()[:, None]
            both = augment(torch.cat([to_tensor(train.images[idx]), mask], 1), gen)  # same flips for both
            x, m, y = both[:, :3], both[:, 3], labels_t[idx]
            a, out = features_and_logits(model, x)
            loss_cls = ce(out, y)
            loss_loc = localisation_loss(class_map(model, a, y), m)
            loss = loss_cls + args.weight * loss_loc
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums += (loss_cls.item() * len(y), loss_loc.item() * len(y), int((out.argmax(1) == y).sum()))
        n = len(train)
        hit = pointing(model, test.images, test.labels, test.masks)
        print(
            f"epoch {epoch + 1}/{args.epochs}  cls {sums[0] / n:.4f}  loc {sums[1] / n:.4f}  train acc {sums[2] / n:.4f}"
            f"  test pointing@0 {hit:.3f}  ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )

    acc = save_and_report(model, test, args.out, t_start)
    write_keras_twin(args.out)
    return acc


if __name__ == "__main__":
    main()
