#!/usr/bin/env python
"""The pointing-game table of the README: every CAM method (and layer) on the shapes test images.

    python scripts/pointing_table.py                       # demo model, 1000 test images, true class
    python scripts/pointing_table.py --model demo-fine     # the finer demo CNN
    python scripts/pointing_table.py --model demo-loc      # the demo CNN fine-tuned to localise
    python scripts/pointing_table.py --n 200 --only gradcam,layercam   # a quick look

Each row explains the true class of ``generate(n, seed=1)`` (the test seed: never trained
on) and plays the pointing game (:func:`gradsight.evaluate.pointing_game`) against the
shapes masks at tolerances 0, 2, 6 and 15 pixels, plus the energy pointing game. Prints a
Markdown table. Nothing is downloaded; CPU only.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import gradsight as gs
from gradsight import evaluate as ev
from gradsight.demo.shapes import generate
from gradsight.inputs import preprocess
from gradsight.models import load_model

TEST_SEED = 1
TOLERANCES = (0, 2, 6, 15)

# (row label, method, options); layers by name as in the model's named_modules()
ROWS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "demo": [
        ("Grad-CAM `relu4` (auto)", "gradcam", {}),
        ('Grad-CAM `relu4`, `gate="guided"`', "gradcam", {"gate": "guided"}),
        ("Grad-CAM++ `relu4`", "gradcam_plus_plus", {}),
        ("XGrad-CAM `relu4`", "xgradcam", {}),
        ("Layer-CAM `relu4`", "layercam", {}),
        ("HiResCAM `relu4`", "hirescam", {}),
        ("Eigen-CAM `relu4`", "eigencam", {}),
        ("Score-CAM `relu4`", "scorecam", {"batch_size": 256}),
        ("Grad-CAM `bn3` (16x16)", "gradcam", {"layer": "bn3"}),
        ("Layer-CAM `bn3` (16x16)", "layercam", {"layer": "bn3"}),
        ("Layer-CAM `bn2` (32x32)", "layercam", {"layer": "bn2"}),
        ("Layer-CAM `[relu4, bn3]`", "layercam", {"layer": ["relu4", "bn3"]}),
        ("Layer-CAM `[relu4, bn3, bn2]`", "layercam", {"layer": ["relu4", "bn3", "bn2"]}),
        ("Grad-CAM `[relu4, bn3]`", "gradcam", {"layer": ["relu4", "bn3"]}),
        ("Grad-CAM++ `[relu4, bn3]`", "gradcam_plus_plus", {"layer": ["relu4", "bn3"]}),
        ("guided Grad-CAM `relu4`", "guided_gradcam", {}),
    ],
    "demo-fine": [
        ("Grad-CAM `relu5` (auto)", "gradcam", {}),
        ('Grad-CAM `relu5`, `gate="guided"`', "gradcam", {"gate": "guided"}),
        ("Grad-CAM++ `relu5`", "gradcam_plus_plus", {}),
        ("XGrad-CAM `relu5`", "xgradcam", {}),
        ("Layer-CAM `relu5`", "layercam", {}),
        ("HiResCAM `relu5`", "hirescam", {}),
        ("Eigen-CAM `relu5`", "eigencam", {}),
        ("Score-CAM `relu5`", "scorecam", {"batch_size": 256}),
        ("Grad-CAM `relu4` (16x16)", "gradcam", {"layer": "relu4"}),
        ("Layer-CAM `relu3` (16x16)", "layercam", {"layer": "relu3"}),
        ("Layer-CAM `relu1` (64x64)", "layercam", {"layer": "relu1"}),
        ("Layer-CAM `[relu5, relu4]`", "layercam", {"layer": ["relu5", "relu4"]}),
        ("Layer-CAM `[relu5, relu2]`", "layercam", {"layer": ["relu5", "relu2"]}),
        ("Grad-CAM `[relu5, relu4]`", "gradcam", {"layer": ["relu5", "relu4"]}),
        ("guided Grad-CAM `relu5`", "guided_gradcam", {}),
        ('Grad-CAM `relu4`, `gate="guided"`', "gradcam", {"layer": "relu4", "gate": "guided"}),
        ("Grad-CAM++ `relu4`", "gradcam_plus_plus", {"layer": "relu4"}),
        ("Layer-CAM `relu4`", "layercam", {"layer": "relu4"}),
        ("Layer-CAM `[relu5, relu4, relu3]`", "layercam", {"layer": ["relu5", "relu4", "relu3"]}),
        ("Grad-CAM++ `[relu5, relu4]`", "gradcam_plus_plus", {"layer": ["relu5", "relu4"]}),
    ],
}

# demo-loc has the demo CNN's architecture: its every-method rows at relu4, one earlier layer, a mix, guided Grad-CAM
ROWS["demo-loc"] = ROWS["demo"][:8] + [ROWS["demo"][i] for i in (9, 11, 15)]


def rows_for(model_name: str) -> list[tuple[str, str, dict[str, Any]]]:
    if model_name in ROWS:
        return ROWS[model_name]
    return [(f"{m} (auto layer)", m, {"batch_size": 256} if m == "scorecam" else {})
            for m in ("gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam",
                      "guided_gradcam")]  # fmt: skip


def heatmaps(model: Any, x: np.ndarray, y: np.ndarray, method: str, options: dict[str, Any], chunk: int) -> np.ndarray:
    out = [gs.explain(model, x[i : i + chunk], method, target=y[i : i + chunk], **options).heatmaps
           for i in range(0, len(x), chunk)]  # fmt: skip
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=250)
    p.add_argument("--only", default=None, help="comma-separated methods to keep")
    p.add_argument("--skip", default=None, help="comma-separated methods to leave out")
    args = p.parse_args(argv)
    model, info = load_model(args.model, framework="torch")
    data = generate(args.n, seed=TEST_SEED, size=info.input_size or 64)
    x = preprocess(data.images, info.preprocessing, info.layout)
    y = data.labels.astype(np.int64)
    acc = float((gs.predict(model, x).argmax(1) == y).mean())
    print(f"model {args.model}: test accuracy {acc:.4f} on {args.n} images (seed {TEST_SEED})")
    print("| method, layer | map | " + " | ".join(f"{t} px" for t in TOLERANCES) + " | energy | s |")
    print("|---|---|" + "---|" * len(TOLERANCES) + "---|---|")
    keep = set(args.only.split(",")) if args.only else None
    skip = set(args.skip.split(",")) if args.skip else set()
    for label, method, options in rows_for(args.model):
        if (keep and method not in keep) or method in skip:
            continue
        t0 = time.perf_counter()
        small = gs.explain(model, x[:1], method, target=y[:1], **options)
        att = small.attributions
        res = "x".join(str(s) for s in np.shape(att)[-2:]) if att is not None else "?"
        maps = heatmaps(model, x, y, method, options, args.chunk)
        accs = [ev.pointing_game(maps, data.masks, tolerance=t).accuracy for t in TOLERANCES]
        energy = float(ev.energy_pointing_game(maps, data.masks).mean())
        cells = " | ".join(f"{a:.3f}" for a in accs)
        print(f"| {label} | {res} | {cells} | {energy:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
