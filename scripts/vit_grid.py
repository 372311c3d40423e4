#!/usr/bin/env python
"""Draw docs/vit_gradcam.png: the bundled demo ViT's Grad-CAM and attention rollout, beside the CNN's Grad-CAM.

    python scripts/vit_grid.py [--out docs/vit_gradcam.png] [--n 4]

Uses the bundled ``demo-vit`` and ``demo`` models and the demo's generated images (nothing
downloaded). The ViT's Grad-CAM takes ``layer="auto"`` (the input of the last block's
attention, ``blocks.3.norm1``: 8 x 8 patch tokens, class token dropped, no user code); the
last column is Grad-CAM at the final norm, which reaches the head through the class token
only: an empty map, and a ZeroGradientWarning that says why.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import gradsight as gs
from gradsight import render
from gradsight.demo.runner import DEMO_SEED, demo_images, display_images, picture
from gradsight.inputs import preprocess
from gradsight.models import load_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/vit_gradcam.png"))
    p.add_argument("--n", type=int, default=4, help="images (rows)")
    args = p.parse_args(argv)
    vit, info = load_model("demo-vit")
    cnn, _ = load_model("demo")
    data = demo_images(args.n, DEMO_SEED)
    x = preprocess(data.images, info.preprocessing, info.layout)
    auto = gs.gradcam(vit, x)
    exps = {
        f"ViT Grad-CAM\n(auto: {auto.layer})": auto,
        "ViT attention\nrollout": gs.attention_rollout(vit, x),
        "CNN Grad-CAM\n(demo, relu4)": gs.gradcam(cnn, x),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gs.ZeroGradientWarning)  # the point of this column
        exps["ViT Grad-CAM at the\nfinal norm: empty"] = gs.gradcam(vit, x, layer="norm")
    display = display_images(data.images, 112)
    names = info.class_names or ()
    pred = next(iter(exps.values())).outputs.argmax(1)
    rows = [[display[i]] + [picture(e, i, display[i]) for e in exps.values()] for i in range(args.n)]
    labels = [f"true: {names[t]}\nViT: {names[q]}" for t, q in zip(data.labels, pred)]
    render.save_png(render.grid(rows, titles=["input", *exps], row_labels=labels), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
