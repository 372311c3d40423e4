"""``gradsight explain --target detection``: one picture per detected box.

For each image the detector runs once; its boxes go through a plain per-class NMS
(outside the gradient path); each kept box is explained with a
:class:`~gradsight.targets.Detection` target restricted to it, and drawn on the
method's picture. Files: ``OUT/<stem>_box<j>_<method>.png`` (``<stem>_box<j>_grid.png``
for several methods).

``--model demo-detector`` is the bundled tiny YOLO (``--framework keras`` for its Keras
twin); any other model needs ``model.detection_config`` (a
:class:`~gradsight.detection.YoloConfig`), set by its factory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelError
from . import _images, _io
from ._common import MIN_PICTURE, check_images, load, out_dir, read_image, stems

__all__ = ["explain_boxes", "draw_box"]

BOX_COLOURS = ((255, 64, 64), (64, 220, 64), (64, 128, 255), (255, 200, 0), (230, 64, 230), (0, 220, 220))


def draw_box(picture: Any, box: np.ndarray, scale: float, label: str, colour: tuple[int, int, int]) -> Any:
    """``picture`` (PIL) with ``box`` (input pixels, scaled by ``scale``) outlined and labelled."""
    from PIL import ImageDraw

    img = picture.copy()
    d = ImageDraw.Draw(img)
    x1, y1, x2, y2 = (float(v) * scale for v in box)
    width = max(2, round(img.size[0] / 128))
    d.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
    left, top, right, bottom = d.textbbox((0, 0), label)
    tw, th = right - left, bottom - top
    tx = min(max(0.0, x1), img.size[0] - tw - 2)
    ty = y1 - th - 3 if y1 >= th + 3 else min(y2 + 1, img.size[1] - th - 2)  # above the box, else below
    d.rectangle([tx, ty, tx + tw + 2, ty + th + 2], fill=(0, 0, 0))
    d.text((tx + 1 - left, ty + 1 - top), label, fill=colour)
    return img


def explain_boxes(args: argparse.Namespace) -> None:
    """``explain`` for detectors (called by :mod:`gradsight.cli.explain`)."""
    from PIL import Image

    from .. import render
    from ..demo.runner import TITLES, picture
    from ..detect import explain_detections
    from ..inputs import preprocess
    from ..methods import METHODS, method_names

    methods = method_names(args.method)
    if args.target not in ("detection", "top1"):
        raise InputError(f"a detector explains its detected boxes: use --target detection (got {args.target!r}).")
    if not 0.0 < args.conf <= 1.0 or not 0.0 < args.nms <= 1.0:
        raise InputError(f"--conf and --nms must be in (0, 1]; got {args.conf} and {args.nms}.")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1]; got {args.alpha}")
    render.colorize(np.zeros((1, 1)), args.cmap)
    paths = check_images(args.images)
    _images.check_size(args.size)
    suffixes = ["grid"] if args.method == "all" else methods  # box count known only later: refuse any box file
    _io.check_outputs(args, [], paths, [(Path(args.out), f"{n}_box[0-9]*_{s}.png") for n in stems(paths) for s in suffixes])
    model, info = load(args)
    if getattr(model, "detection_config", None) is None:
        raise ModelError(
            f"--target detection needs a YOLO-style model that declares its head; {info.description} has no "
            "detection_config. Set model.detection_config = gradsight.detection.YoloConfig(...) in its factory."
        )
    size = args.size or info.input_size or 224
    prep = args.preprocess or info.preprocessing
    layer = None if args.layer == "auto" else args.layer
    draw = max(size, MIN_PICTURE)
    out = out_dir(args.out)
    sg = {k: v for k, v in (("samples", args.samples), ("noise", args.noise)) if v is not None}
    options = {"smoothgrad": {"seed": 0, **sg}}

    for path, name in zip(paths, stems(paths)):
        original = read_image(path, getattr(args, "resize", "squash"))
        small = np.asarray(original.resize((size, size), Image.Resampling.BILINEAR))[None]
        shown = np.asarray(original.resize((draw, draw), Image.Resampling.BICUBIC))
        x = preprocess(small, prep, info.layout)
        results = {
            m: explain_detections(model, x, m, conf_threshold=args.conf, iou_threshold=args.nms,
                                  layer=layer if METHODS[m].uses_layer else None, **options.get(m, {}))
            for m in methods
        }
        dets = next(iter(results.values())).detections[0]
        if len(dets) == 0:
            print(f"{path}: no detection with confidence >= {args.conf}", file=sys.stdout)
            continue
        for j, (box, score, cls) in enumerate(zip(dets.boxes, dets.scores, dets.classes)):
            label = f"{info.class_name(int(cls)) or int(cls)} {score:.2f}"
            colour = BOX_COLOURS[int(cls) % len(BOX_COLOURS)]
            tiles = [draw_box(picture(r.explanation, j, shown, args.cmap, args.alpha), box, draw / size, label, colour)
                     for r in results.values()]
            if len(methods) > 1:
                first = draw_box(Image.fromarray(shown), box, draw / size, label, colour)
                titles = [TITLES["input"]] + [TITLES[m] for m in methods]
                grid = _io.labelled_box_grid(args, [first] + tiles, titles, [r.explanation for r in results.values()],
                                             f"box {j}: {label}")  # unless --plain
                written = [render.save_png(grid, out / f"{name}_box{j}_grid.png")]
            else:
                written = [render.save_png(_io.labelled_box(args, r.explanation, t, f"box {j}: {label}"),
                                           out / f"{name}_box{j}_{m}.png") for t, m, r in zip(tiles, methods, results.values())]
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            print(f"{path}: box {j} {label} at ({x1}, {y1}, {x2}, {y2}) -> {', '.join(str(w) for w in written)}",
                  file=sys.stdout)
