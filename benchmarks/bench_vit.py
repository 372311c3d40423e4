#!/usr/bin/env python
"""Transformer Grad-CAM against its floor: gs.gradcam on a ViT-Base-sized Hugging Face ViT
(random weights, 8 x 224^2) vs a bare-autograd implementation of the same map (a forward
hook on the same layer, autograd.grad to it, drop the class token, reshape, weigh).

Ratios of medians measured in this one run, the two interleaved (one warm-up each, then
``--repeats`` rounds, order alternated every round).

    python benchmarks/bench_vit.py              # ViT-Base: 12 x 768, patch 16, 8 x 224^2
    python benchmarks/bench_vit.py --quick      # a tiny ViT, 1 round: checks the script
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from transformers import ViTConfig, ViTForImageClassification

import gradsight as gs

TARGET = 1.10


def floor(model: torch.nn.Module, x: torch.Tensor, layer: torch.nn.Module, prefix: int = 1) -> np.ndarray:
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        logits = model(x.detach().requires_grad_(True)).logits  # frozen weights: the input carries the graph
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
    print(f"ViT {'tiny' if args.quick else 'Base'} Grad-CAM, {n} x {size}^2, {repeats} rounds, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"| gradsight {med['gradsight']:.3f} s | floor {med['floor']:.3f} s | ratio {ratio:.3f} "
          f"(target <= {TARGET}) |")


if __name__ == "__main__":
    main()
