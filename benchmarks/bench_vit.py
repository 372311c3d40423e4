#!/usr/bin/env python
"""Transformer Grad-CAM against its floor: gs.gradcam on a ViT-Base-sized Hugging Face ViT
(random weights, 8 x 224^2) vs a bare-autograd implementation of the same map (a forward
hook on the same layer that starts the autograd graph there, autograd.grad to it, drop the
class token, reshape, weigh).

Ratios of medians measured in this one run, the two interleaved (one warm-up each, then
``--repeats`` rounds, order alternated every round).

    python benchmarks/bench_vit.py              # ViT-Base: 12 x 768, patch 16, 8 x 224^2
    python benchmarks/bench_vit.py --quick      # a tiny ViT, 1 round: checks the script

The full run prints its table and writes it to ``benchmarks/results/vit_<host>.md`` with
the command, the load average at start and the versions (``--quick`` only prints).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import ViTConfig, ViTForImageClassification

import gradsight as gs

TARGET = 1.10


def floor(model: torch.nn.Module, x: torch.Tensor, layer: torch.nn.Module, prefix: int = 1) -> np.ndarray:
    seen: list[torch.Tensor] = []

    def hook(m: torch.nn.Module, i: object, o: torch.Tensor) -> torch.Tensor:
        # Frozen weights and an input without grad: the graph starts here, nothing before the layer is kept.
        seen.append(o.detach().requires_grad_(True))
        return seen[-1]

    handle = layer.register_forward_hook(hook)
    try:
        logits = model(x).logits
    finally:
        handle.remove()
    a = seen[-1]
    cls = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, cls[:, None]).sum(), [a])
    n, t, c = a.shape
    side = int(round((t - prefix) ** 0.5))
    a, g = a[:, prefix:].reshape(n, side, side, c), g[:, prefix:].reshape(n, side, side, c)
    return torch.relu((g.mean((1, 2), keepdim=True) * a).sum(-1)).detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    torch.manual_seed(0)
    if args.quick:
        cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=10)
        n, size, repeats = 2, 32, 1
    else:
        cfg = ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072, num_labels=1000)
        n, size, repeats = 8, 224, args.repeats
    model = ViTForImageClassification(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # as a deployed model; both sides take no parameter gradients
    x = torch.randn(n, 3, size, size)
    layer_name = f"vit.layers.{cfg.num_hidden_layers - 1}.layernorm_before"
    layer = dict(model.named_modules())[layer_name]

    def ours() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gs.gradcam(model, x).attributions

    def bare() -> np.ndarray:
        with torch.enable_grad():
            return floor(model, x, layer)

    np.testing.assert_allclose(ours(), bare(), rtol=1e-3, atol=1e-5)  # warm-up, and the same map
    times: dict[str, list[float]] = {"gradsight": [], "floor": []}
    for r in range(repeats):
        order = [("gradsight", ours), ("floor", bare)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["gradsight"] / med["floor"]
    lines = [
        "# Transformer Grad-CAM against its floor", "",
        f"    {' '.join(['python', 'benchmarks/bench_vit.py', *sys.argv[1:]])}", "",
        f"ViT {'tiny' if args.quick else 'Base'} Grad-CAM (Hugging Face ViTForImageClassification, random weights), "
        f"{n} x {size}^2, {repeats} interleaved rounds, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{socket.gethostname()} ({platform.machine()}, {os.cpu_count()} CPUs), load average {load:.2f} at start"
        + (" (not a quiet machine: read the ratio, not the seconds)" if load > 0.5 else ""), "",
        f"| gradsight {med['gradsight']:.3f} s | floor {med['floor']:.3f} s | ratio {ratio:.3f} (target <= {TARGET}) |",
        "", f"gradsight: `gs.gradcam(model, x)` (layer='auto' = `{layer_name}`). The floor: a forward hook on that "
        "layer that starts the autograd graph there (weights frozen, input without grad), `autograd.grad` of the "
        "top-1 logits to it, class token dropped, reshape, Grad-CAM weights. Both maps agree (rtol 1e-3).",
    ]
    print("\n".join(lines))
    if not args.quick:
        out = Path(__file__).resolve().parent / "results" / f"vit_{socket.gethostname().split('.')[0]}.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
