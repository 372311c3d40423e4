"""``gradsight explain --target detection``: one picture per detected box.

For each image the detector runs once; its boxes go through a plain per-class NMS
(outside the gradient path); each kept box is explained with a
:class:`~gradsight.targets.Detection` target restricted to it, and drawn on the
method's picture. Files: ``OUT/<stem>_box<j>_<method>.png`` (``<stem>_box<j>_grid.png``
for ``--method all``).

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

from .errors import InputError, ModelError

__all__ = ["explain_detector", "load_demo_detector", "draw_box"]

BOX_COLOURS = ((255, 64, 64), (64, 220, 64), (64, 128, 255), (255, 200, 0), (230, 64, 230), (0, 220, 220))


def load_demo_detector(framework: str = "torch") -> tuple[Any, Any]:
    """The bundled detector (PyTorch, or its Keras twin) and its :class:`~gradsight.models.ModelInfo`."""
    from .demo.detector import INPUT_SIZE
    from .demo.shapes import CLASSES
    from .models import ModelInfo

    try:
        if framework == "keras":
            from .demo.keras_detector import load_keras_detector

            model = load_keras_detector()
        else:
            from .demo.detector import load_demo_detector as load

            model = load()
    except ImportError as exc:
        raise ModelError(f"the {framework} demo detector needs {'TensorFlow/Keras' if framework == 'keras' else 'PyTorch'}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ModelError(str(exc)) from exc
    return model, ModelInfo(
        framework=framework,
        layout="NHWC" if framework == "keras" else "NCHW",
        input_size=INPUT_SIZE,
        preprocessing="demo",
        class_names=tuple(CLASSES),
        description=f"the bundled tiny YOLO demo detector ({'Keras' if framework == 'keras' else 'PyTorch'})",
    )


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


def explain_detector(args: argparse.Namespace) -> None:
    """The ``explain`` subcommand for detectors (called by :mod:`gradsight.cli`)."""
    from PIL import Image

    from . import render
    from .cli import MIN_PICTURE, _check_images, _load, _read_image, _stems
    from .demo.runner import TITLES, picture
    from .detection import explain_detections
    from .methods import METHODS, method_names
    from .models import preprocess

    methods = method_names(args.method)
    if args.target not in ("detection", "top1"):
        raise InputError(f"a detector explains its detected boxes: use --target detection (got {args.target!r}).")
    if not 0.0 < args.conf <= 1.0 or not 0.0 < args.nms <= 1.0:
        raise InputError(f"--conf and --nms must be in (0, 1]; got {args.conf} and {args.nms}.")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1]; got {args.alpha}")
    render.colorize(np.zeros((1, 1)), args.cmap)
    paths = _check_images(args.images)
    model, info = _load(args)
    if getattr(model, "detection_config", None) is None:
        raise ModelError(
            f"--target detection needs a YOLO-style model that declares its head; {info.description} has no "
            "detection_config. Set model.detection_config = gradsight.detection.YoloConfig(...) in its factory."
        )
    size = args.size or info.input_size or 224
    prep = args.preprocess or info.preprocessing
    layer = None if args.layer == "auto" else args.layer
    draw = max(size, MIN_PICTURE)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sg = {k: v for k, v in (("samples", args.samples), ("noise", args.noise)) if v is not None}
    options = {"smoothgrad": {"seed": 0, **sg}}

    for path, name in zip(paths, _stems(paths)):
        original = _read_image(path)
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
                written = [render.save_png(render.grid([[first] + tiles], titles=titles), out / f"{name}_box{j}_grid.png")]
            else:
                written = [render.save_png(t, out / f"{name}_box{j}_{m}.png") for t, m in zip(tiles, methods)]
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            print(f"{path}: box {j} {label} at ({x1}, {y1}, {x2}, {y2}) -> {', '.join(str(w) for w in written)}",
                  file=sys.stdout)
