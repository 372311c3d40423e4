"""Train the demo detector (``gradsight.demo.detector.TinyYolo``) and report its mAP@0.5.

    python scripts/train_detector.py                 # writes src/gradsight/demo/weights/tiny_yolo.pt

Seeded and CPU-only: the training images come from
``gradsight.demo.shapes_detect.generate(n, seed=1)``, augmented with the 8 flips and
quarter turns (which keep every shape's class), and the test images from a separate
seed. The loss is YOLOv3's: BCE on the objectness of every cell/anchor (predictions that
already overlap an object by IoU > 0.5 are not pushed to 0), BCE on the box centre
offsets and on the classes, squared error on the log box size, for the anchor (over
both scales) whose shape best fits each object.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gradsight.demo.detector import CONFIG, INPUT_SIZE, WEIGHTS_PATH, TinyYolo
from gradsight.demo.shapes import preprocess
from gradsight.demo.shapes_detect import CLASSES, generate
from gradsight.detection import detect, mean_average_precision

TRAIN_SEED, TEST_SEED = 1, 2


def augment(images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """A random element of the dihedral group per image (transpose, then flips), boxes moved with it."""
    out, moved = np.empty_like(images), []
    s = images.shape[1]
    for i, (img, b) in enumerate(zip(images, boxes)):
        t = int(rng.integers(8))
        b = b.copy()
        if t & 4:
            img, b = img.transpose(1, 0, 2), b[:, [1, 0, 3, 2]]
        if t & 1:
            img, b = img[:, ::-1], np.stack([s - b[:, 2], b[:, 1], s - b[:, 0], b[:, 3]], 1)
        if t & 2:
            img, b = img[::-1], np.stack([b[:, 0], s - b[:, 3], b[:, 2], s - b[:, 1]], 1)
        out[i] = img
        moved.append(b.reshape(-1, 4))
    return out, moved


def _anchor_list() -> list[tuple[int, int, float, float]]:
    return [(s, a, w, h) for s, scale in enumerate(CONFIG.anchors) for a, (w, h) in enumerate(scale)]


def build_targets(boxes: list[np.ndarray], labels: list[np.ndarray], grids: list[tuple[int, int]]) -> list[dict]:
    """Per scale: positive mask, xy offsets, log-size targets, class and box-size weight."""
    b = len(boxes)
    tg = []
    for s, (h, w) in enumerate(grids):
        a = len(CONFIG.anchors[s])
        tg.append({
            "pos": np.zeros((b, a, h, w), bool), "xy": np.zeros((b, a, h, w, 2), np.float32),
            "wh": np.zeros((b, a, h, w, 2), np.float32), "cls": np.zeros((b, a, h, w), np.int64),
            "scale": np.zeros((b, a, h, w), np.float32),
        })
    anchors = _anchor_list()
    aw = np.array([p[2] for p in anchors])
    ah = np.array([p[3] for p in anchors])
    for i, (bx, lb) in enumerate(zip(boxes, labels)):
        for (x1, y1, x2, y2), c in zip(bx, lb):
            bw, bh = x2 - x1, y2 - y1
            inter = np.minimum(bw, aw) * np.minimum(bh, ah)
            best = int(np.argmax(inter / (bw * bh + aw * ah - inter)))
            s, a, pw, ph = anchors[best]
            stride = CONFIG.strides[s]
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            gx, gy = min(int(cx), grids[s][1] - 1), min(int(cy), grids[s][0] - 1)
            t = tg[s]
            t["pos"][i, a, gy, gx] = True
            t["xy"][i, a, gy, gx] = (cx - gx, cy - gy)
            t["wh"][i, a, gy, gx] = (math.log(bw / pw), math.log(bh / ph))
            t["cls"][i, a, gy, gx] = c
            t["scale"][i, a, gy, gx] = 2.0 - bw * bh / INPUT_SIZE**2
    return tg


def _decode(raw: torch.Tensor, s: int) -> torch.Tensor:
    """(B, A, H, W, 4) boxes x1 y1 x2 y2 from canonical raw (B, A, H, W, 5 + C)."""
    _, _, h, w, _ = raw.shape
    stride = CONFIG.strides[s]
    anc = torch.tensor(CONFIG.anchors[s], dtype=raw.dtype)
    gy, gx = torch.meshgrid(torch.arange(h, dtype=raw.dtype), torch.arange(w, dtype=raw.dtype), indexing="ij")
    cx = (torch.sigmoid(raw[..., 0]) + gx) * stride
    cy = (torch.sigmoid(raw[..., 1]) + gy) * stride
    bw = anc[:, 0].view(1, -1, 1, 1) * torch.exp(raw[..., 2].clamp(max=6))
    bh = anc[:, 1].view(1, -1, 1, 1) * torch.exp(raw[..., 3].clamp(max=6))
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)


def _iou_any(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max IoU of each predicted box (B, P, 4) with the image's boxes (B, M, 4); (B, P)."""
    lt = torch.maximum(pred[:, :, None, :2], gt[:, None, :, :2])
    rb = torch.minimum(pred[:, :, None, 2:], gt[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    ap = (pred[..., 2:] - pred[..., :2]).clamp(min=0).prod(-1)
    ag = (gt[..., 2:] - gt[..., :2]).prod(-1)
    iou = inter / (ap[:, :, None] + ag[:, None, :] - inter + 1e-9)
    return torch.where(valid[:, None, :], iou, torch.zeros_like(iou)).amax(-1)


def yolo_loss(outputs: tuple[torch.Tensor, ...], boxes: list[np.ndarray], labels: list[np.ndarray]) -> torch.Tensor:
    b = outputs[0].shape[0]
    grids = [tuple(o.shape[2:]) for o in outputs]
    tg = build_targets(boxes, labels, grids)
    m = max(1, max(len(x) for x in boxes))
    gt = torch.zeros(b, m, 4)
    valid = torch.zeros(b, m, dtype=torch.bool)
    for i, x in enumerate(boxes):
        gt[i, : len(x)] = torch.from_numpy(x)
        valid[i, : len(x)] = True
    total = outputs[0].new_zeros(())
    for s, out in enumerate(outputs):
        a = len(CONFIG.anchors[s])
        h, w = grids[s]
        raw = out.view(b, a, 5 + CONFIG.num_classes, h, w).permute(0, 1, 3, 4, 2)
        t = {k: torch.from_numpy(v) for k, v in tg[s].items()}
        pos = t["pos"]
        with torch.no_grad():
            ignore = _iou_any(_decode(raw.detach(), s).reshape(b, -1, 4), gt, valid).view(b, a, h, w) > 0.5
        obj_w = (pos | ~ignore).float()
        total = total + (F.binary_cross_entropy_with_logits(raw[..., 4], pos.float(), reduction="none") * obj_w).sum()
        if pos.any():
            p = raw[pos]
            sc = t["scale"][pos]
            total = total + (F.binary_cross_entropy_with_logits(p[:, :2], t["xy"][pos], reduction="none").sum(1) * sc).sum()
            total = total + 0.5 * ((p[:, 2:4] - t["wh"][pos]).square().sum(1) * sc).sum()
            onehot = F.one_hot(t["cls"][pos], CONFIG.num_classes).float()
            total = total + F.binary_cross_entropy_with_logits(p[:, 5:], onehot, reduction="sum")
    return total / b


def evaluate(model: TinyYolo, n: int, seed: int = TEST_SEED) -> tuple[float, np.ndarray]:
    data = generate(n, seed=seed)
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, n, 100):
            outs = model(torch.from_numpy(preprocess(data.images[i:i + 100])))
            preds += detect([o.numpy() for o in outs], CONFIG, channels_last=False, conf_threshold=0.01)
    return mean_average_precision(preds, data.boxes, data.labels, CONFIG.num_classes, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=3000, help="training images (default 3000)")
    ap.add_argument("--test", type=int, default=500, help="test images for mAP (default 500)")
    ap.add_argument("--steps", type=int, default=800, help="optimiser steps (default 800)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    data = generate(args.train, seed=TRAIN_SEED)
    print(f"generated {args.train} training images in {time.perf_counter() - t0:.0f} s")

    model = TinyYolo()
    with torch.no_grad():  # start from a low objectness prior (about 1 %) so early steps are not all negatives
        for head in (model.head8, model.head16):
            head.bias.view(-1, 5 + CONFIG.num_classes)[:, 4] = -4.0
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    warm = min(100, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, args.steps - warm)))
    )
    model.train()
    order = rng.permutation(args.train)
    pos, running = 0, 0.0
    for step in range(args.steps):
        if pos + args.batch > args.train:
            order, pos = rng.permutation(args.train), 0
        idx = order[pos:pos + args.batch]
        pos += args.batch
        images, boxes = augment(data.images[idx], [data.boxes[i] for i in idx], rng)
        x = torch.from_numpy(preprocess(images))
        loss = yolo_loss(model(x), boxes, [data.labels[i] for i in idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}/{args.steps}  loss {running:.3f}  {time.perf_counter() - t0:.0f} s", flush=True)

    model.eval()
    m_ap, aps = evaluate(model, args.test)
    print(f"mAP@0.5 on {args.test} generated test images (seed {TEST_SEED}): {m_ap:.3f}")
    print("  AP per class: " + ", ".join(f"{c} {a:.3f}" for c, a in zip(CLASSES, aps)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) after {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
