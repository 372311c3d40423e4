#!/usr/bin/env python
"""Draw docs/cam_family_grid.png: the CAM family (and IG, input x gradient) on the demo images.

    python scripts/cam_family_grid.py [--out docs/cam_family_grid.png] [--framework torch|keras] [--n 4]

Uses the bundled demo model and generated images (nothing downloaded); the same drawing
code as ``gradsight demo`` (:func:`gradsight.demo.runner.method_row`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradsight import render
from gradsight.demo.runner import (
    DEMO_SEED,
    TITLES,
    demo_images,
    display_images,
    explain_methods,
    method_row,
)
from gradsight.inputs import preprocess
from gradsight.methods import GROUPS
from gradsight.models import load_model

METHODS = [*GROUPS["cams"], "integrated_gradients", "input_x_gradient"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/cam_family_grid.png"))
    p.add_argument("--framework", choices=("torch", "keras"), default="torch")
    p.add_argument("--n", type=int, default=4, help="images (rows)")
    args = p.parse_args(argv)
    model, info = load_model("demo", framework=args.framework)
    data = demo_images(args.n, DEMO_SEED)
    x = preprocess(data.images, info.preprocessing, info.layout)
    exps = explain_methods(model, x, METHODS, options={"scorecam": {"batch_size": 128}})
    names = info.class_names or ()
    display = display_images(data.images, 112)
    pred = next(iter(exps.values())).outputs.argmax(1)
    rows = [method_row(exps, i, display[i]) for i in range(args.n)]
    labels = [f"true: {names[t]}\npred: {names[q]}" for t, q in zip(data.labels, pred)]
    titles = [TITLES["input"]] + [TITLES[m] for m in METHODS]
    render.save_png(render.grid(rows, titles=titles, row_labels=labels), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
