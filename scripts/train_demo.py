"""Train the demo ``ShapesNet`` on the shapes benchmark and write the bundled weights.

Usage (from the repository root)::

    .venv/bin/python scripts/train_demo.py                 # writes src/gradsight/demo/weights/shapes_net.pt
    .venv/bin/python scripts/train_demo.py --epochs 2 --out /tmp/w.pt   # quick smoke run

Training images are ``generate(n_train, seed=0)``; the test set is
``generate(n_test, seed=1)`` (a different seed, never trained on). Augmentation:
random horizontal/vertical flips and 90-degree rotations (every class is invariant
to them). Seeded (numpy data, ``torch.manual_seed``) and CPU-only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from gradsight.demo.model import WEIGHTS_PATH, ShapesNet
    from gradsight.demo.shapes import CLASSES, MEAN, STD, generate
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from gradsight.demo.model import WEIGHTS_PATH, ShapesNet
    from gradsight.demo.shapes import CLASSES, MEAN, STD, generate

TRAIN_SEED = 0
TEST_SEED = 1


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float32 (N, 3, H, W), same maths as ``preprocess``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.from_numpy(MEAN).view(1, 3, 1, 1)
    std = torch.from_numpy(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random per-sample flips and 90-degree rotations of a square (N, C, H, W) batch."""
    n = x.shape[0]
    flip_h = torch.rand(n, generator=gen) < 0.5
    flip_v = torch.rand(n, generator=gen) < 0.5
    rot = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip_h.view(-1, 1, 1, 1), x.flip(3), x)
    x = torch.where(flip_v.view(-1, 1, 1, 1), x.flip(2), x)
    x = torch.where(rot.view(-1, 1, 1, 1), x.transpose(2, 3), x)
    return x


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 250) -> np.ndarray:
    """Predicted labels of ``images`` (model switched to eval mode)."""
    model.eval()
    preds = [model(to_tensor(images[i : i + batch])).argmax(1) for i in range(0, len(images), batch)]
    return torch.cat(preds).numpy()


def fit(model: nn.Module, train: Any, test: Any, opt: torch.optim.Optimizer, sched: Any, epochs: int,
        batch_size: int, gen: torch.Generator, clip: float | None = None, frozen: Any = ()) -> None:
    """The training loop of the demo models: shuffled batches, augmentation, label smoothing 0.05,
    optional gradient-norm clipping, one scheduler step per batch; a line per epoch.
    ``frozen``: modules kept in eval mode while the rest trains (a frozen trunk's BatchNorm)."""
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    labels_t = torch.from_numpy(train.labels)
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for m in frozen:
            m.eval()
        order = torch.randperm(len(train), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for s in range(steps_per_epoch):
            idx = order[s * batch_size : (s + 1) * batch_size]
            x = augment(to_tensor(train.images[idx.numpy()]), gen)
            y = labels_t[idx]
            out = model(x)
            loss = loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
        test_acc = float((evaluate(model, test.images, test.labels) == test.labels).mean())
        print(
            f"epoch {epoch + 1:2d}/{epochs}  loss {loss_sum / total:.4f}  train acc {correct / total:.4f}  "
            f"test acc {test_acc:.4f}  ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )


def save_and_report(model: nn.Module, test: Any, out: Path, started: float | None = None) -> float:
    """Per-class and overall test accuracy printed, the ``state_dict`` written to ``out``; the accuracy.
    ``started`` (a ``time.perf_counter()``): also print the file's size and the wall time since then."""
    preds = evaluate(model, test.images, test.labels)
    acc = float((preds == test.labels).mean())
    for k, name in enumerate(CLASSES):
        sel = test.labels == k
        print(f"  {name:9s} {float((preds[sel] == k).mean()):.4f}  (n={int(sel.sum())})")
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, out)
    print(f"final test accuracy (seed {TEST_SEED}, n={len(test)}): {acc:.4f}")
    if started is not None:
        print(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB); wall time {time.perf_counter() - started:.1f}s")
    return acc


def training_parser(doc: str, *, n_train: int, epochs: int, lr: float, out: Path, threads: int = 2
                    ) -> argparse.ArgumentParser:
    """The options every demo training script takes (its own defaults given); a script adds its extras."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=n_train)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--out", type=Path, default=out)
    return parser


def seeded_data(args: argparse.Namespace) -> tuple[torch.Generator, Any, Any]:
    """Threads and seeds set (torch, numpy, the shuffling generator), then the train and test images
    generated (``generate(n_train, seed=0)``, ``generate(n_test, seed=1)``): ``(generator, train, test)``."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    train = generate(args.n_train, seed=TRAIN_SEED)
    test = generate(args.n_test, seed=TEST_SEED)
    print(f"generated {len(train)} train + {len(test)} test images in {time.perf_counter() - t0:.1f}s", flush=True)
    return gen, train, test


def one_cycle_adam(params: Any, args: argparse.Namespace, n_train: int) -> tuple[torch.optim.Optimizer, Any]:
    """Adam (weight decay 1e-4) under a one-cycle schedule peaking at ``args.lr``, one step per batch."""
    steps = (n_train + args.batch_size - 1) // args.batch_size
    opt = torch.optim.Adam(params, lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps, pct_start=0.2)
    return opt, sched


def write_keras_twin(out: Path) -> None:
    """When ``out`` is a bundled weights file with a Keras twin: the twin's converted copy too, so
    Keras users need no torch (:data:`gradsight.demo.keras_model.TWINS`)."""
    if out.resolve().parent != WEIGHTS_PATH.parent:
        return  # not a bundled file: no need to import Keras
    from gradsight.demo.keras_model import TWINS, save_converted_weights

    npz = TWINS.get(out.resolve())
    if npz is not None:
        print(f"wrote {save_converted_weights(out.resolve(), npz)} (Keras twin weights)")


def main(argv: list[str] | None = None) -> float:
    args = training_parser(__doc__, n_train=10000, epochs=12, lr=3e-3, out=WEIGHTS_PATH).parse_args(argv)
    t_start = time.perf_counter()
    gen, train, test = seeded_data(args)
    print(f"train class counts: {np.bincount(train.labels, minlength=len(CLASSES)).tolist()}", flush=True)

    model = ShapesNet()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"ShapesNet: {n_params} parameters", flush=True)
    opt, sched = one_cycle_adam(model.parameters(), args, len(train))
    fit(model, train, test, opt, sched, args.epochs, args.batch_size, gen)
    acc = save_and_report(model, test, args.out, t_start)
    write_keras_twin(args.out)
    return acc


if __name__ == "__main__":
    main()
