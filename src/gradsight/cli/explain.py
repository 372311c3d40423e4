"""``gradsight explain``: one picture per image and method (per detected box for detectors)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._common import DEFAULT_SIZE, MIN_PICTURE, PROG, check_images, load, out_dir, read_image, stems, warn

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    ex = subs.add_parser(
        "explain", parents=parents, help="explain a model's decisions on image files",
        description="Explain a model's decision on each image: writes OUT/<stem>_<method>.png (the picture of "
                    "one method), or OUT/<stem>_grid.png for --method all (input and all six methods).",
    )
    ex.add_argument("images", nargs="+", metavar="IMAGE", help="image files (anything Pillow reads)")
    ex.add_argument("--method", default="gradcam", metavar="NAME",
                    help="saliency, smoothgrad, deconvnet, guided_backprop, gradcam, guided_gradcam, or 'all' "
                         "(default: gradcam)")
    ex.add_argument("--target", default="top1", metavar="top1|INT|detection",
                    help="class to explain: each image's top-1 prediction (default) or a class index; "
                         "'detection' for YOLO-style detectors: one picture per detected box")
    ex.add_argument("--layer", default="auto", metavar="auto|NAME",
                    help="Grad-CAM layer: 'auto' (the last layer with a spatial output) or a name from "
                         f"'{PROG} layers'")
    ex.add_argument("--output", metavar="KEY|INDEX",
                    help="for models returning a dict, tuple, dataclass or ModelOutput: the output to explain "
                         "(default: the only one, or a ModelOutput's logits)")
    ex.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files (created if missing)")
    ex.add_argument("--size", type=int, metavar="N",
                    help=f"resize images to NxN for the model (default: the model's size, 64 for the demo, "
                         f"else {DEFAULT_SIZE})")
    ex.add_argument("--preprocess", choices=("imagenet", "none", "demo"),
                    help="input normalisation: ImageNet mean/std, none ([0, 1]), or the demo's (default: the "
                         "model's own; 'imagenet' for your models)")
    look = ex.add_argument_group("pictures")
    look.add_argument("--cmap", default="jet", help="matplotlib colormap of heat maps (default: jet)")
    look.add_argument("--alpha", type=float, default=0.5, help="heat-map weight over the image, 0..1 (default: 0.5)")
    det = ex.add_argument_group("detection (--target detection)")
    det.add_argument("--conf", type=float, default=0.25, help="minimum box confidence (default: 0.25)")
    det.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold (default: 0.45)")
    sg = ex.add_argument_group("smoothgrad")
    sg.add_argument("--samples", type=int, help="noisy copies (default: 50)")
    sg.add_argument("--noise", type=float, help="noise level, a fraction of the input's range (default: 0.15)")
    ex.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per forward pass (default: 8)")


def _parse_target(text: str) -> int | None:
    if text.strip().lower() in ("top1", "top-1", "auto"):
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--target must be 'top1' or a class index (an int); got {text!r}") from None


def run(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from .. import render
    from ..backends import backend_for
    from ..demo.runner import TITLES, explain_methods, method_row, picture
    from ..inputs import preprocess
    from ..methods import METHODS, get_method

    if args.target == "detection" or args.model == "demo-detector":
        from .explain_boxes import explain_boxes

        return explain_boxes(args)
    methods = list(METHODS) if args.method == "all" else [get_method(args.method).name]
    target = _parse_target(args.target)
    if args.size is not None and args.size < 8:
        raise InputError(f"--size must be at least 8 pixels; got {args.size}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1]; got {args.alpha}")
    render.colorize(np.zeros((1, 1)), args.cmap)  # an unknown colormap fails now, not after the work
    paths = check_images(args.images)

    model, info = load(args)
    size = args.size or info.input_size or DEFAULT_SIZE
    prep = args.preprocess or info.preprocessing
    layer = None if args.layer == "auto" else args.layer
    uses_layer = [m for m in methods if METHODS[m].uses_layer]
    if layer is not None:
        if uses_layer:
            backend_for(model).resolve_layer(model, layer)  # an unknown name fails before any work
        else:
            warn(f"--layer is used only by gradcam and guided_gradcam; ignored for {methods[0]}")
    sg = {k: v for k, v in (("samples", args.samples), ("noise", args.noise)) if v is not None}
    key = args.output
    pick = {} if key is None else {"output": int(key) if key.lstrip("-").isdigit() else key}
    options = {m: dict(pick) for m in methods}
    options["smoothgrad"] = {**pick, "seed": 0, **sg}
    draw = max(size, MIN_PICTURE)
    titles = [TITLES["input"]] + [TITLES[m] for m in methods]
    out = out_dir(args.out)
    names = stems(paths)

    # One step per image and method, so the bar moves within a batch too.
    bar = tqdm(total=len(paths) * len(methods), unit="map", file=sys.stderr, disable=len(paths) < 2, leave=False)
    with bar:
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start:start + args.batch_size]
            originals = [read_image(p) for p in chunk]
            small = np.stack([np.asarray(im.resize((size, size), Image.Resampling.BILINEAR)) for im in originals])
            shown = np.stack([np.asarray(im.resize((draw, draw), Image.Resampling.BICUBIC)) for im in originals])
            x = preprocess(small, prep, info.layout)

            def done(_method: str, k: int = len(chunk)) -> None:
                bar.update(k)

            exps = explain_methods(model, x, methods, target=target, layer=layer, options=options, done=done)
            first = next(iter(exps.values()))
            for i, name in enumerate(names[start:start + len(chunk)]):
                if args.method == "all":
                    row = method_row(exps, i, shown[i], args.cmap, args.alpha)
                    written = [render.save_png(render.grid([row], titles=titles), out / f"{name}_grid.png")]
                else:
                    written = [
                        render.save_png(picture(e, i, shown[i], args.cmap, args.alpha), out / f"{name}_{m}.png")
                        for m, e in exps.items()
                    ]
                tqdm.write(_prediction_line(chunk[i], first, i, info) + f" -> {', '.join(str(w) for w in written)}",
                           file=sys.stdout)


def _prediction_line(path: Path, exp: Any, i: int, info: Any) -> str:
    def cls(k: int) -> str:
        name = info.class_name(k)
        return f"{k} ({name})" if name else str(k)

    outputs = exp.outputs[i]
    if outputs.ndim != 1:
        return f"{path}: score {float(exp.scores[i]):.4g}"
    pred = int(outputs.argmax())
    line = f"{path}: predicted {cls(pred)} score {float(outputs[pred]):.4g}"
    if exp.targets is not None and int(exp.targets[i]) != pred:
        line += f"; explained {cls(int(exp.targets[i]))} score {float(exp.scores[i]):.4g}"
    return line
