"""``gradsight explain``: one picture per image and method (per detected box for detectors)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import _images, _io
from ._common import DEFAULT_SIZE, MIN_PICTURE, PROG, check_images, load, out_dir, stems, warn
from ._inputs import add_arguments as add_input_arguments
from .explain_table import add_table_arguments

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    ex = subs.add_parser(
        "explain", parents=parents, help="explain a model's decisions on image files (or a table's rows)",
        description="Explain a model's decision on each image: writes OUT/<stem>_<method>.png (the picture of "
                    "one method), or OUT/<stem>_grid.png for several (input and one picture per method). "
                    "With --data FILE (a .csv or .npy table) instead of images: OUT/<stem>_row<i>_<method>.png, "
                    "a bar chart of each row's top features.",
    )
    ex.add_argument("images", nargs="*", metavar="IMAGE", help="image files (anything Pillow reads)")
    ex.add_argument("--method", default="gradcam", metavar="NAME",
                    help="a method (gradsight.METHODS), a comma-separated list, or a group: 'all' (the six classic "
                         "methods), 'cams', 'gradients', 'every' (default: gradcam)")
    ex.add_argument("--target", default="top1", metavar="top1|INT|detection",
                    help="class to explain: each image's top-1 prediction (default) or a class index; "
                         "'detection' for YOLO-style detectors: one picture per detected box")
    ex.add_argument("--layer", default="auto", metavar="auto|NAME",
                    help="Grad-CAM layer: 'auto' (the last convolution stage's output) or a name from "
                         f"'{PROG} layers'")
    ex.add_argument("--output", metavar="KEY|INDEX",
                    help="for models returning a dict, tuple, dataclass or ModelOutput: the output to explain "
                         "(default: the only one, or a ModelOutput's logits)")
    ex.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files (created if missing)")
    ex.add_argument("--size", type=int, metavar="N",
                    help=f"resize images to NxN for the model (default: the model's size, 64 for the demo, "
                         f"else {DEFAULT_SIZE})")
    ex.add_argument("--preprocess", choices=("unit", "raw", "imagenet", "caffe", "tf", "demo", "none"),
                    help="input scaling: unit ([0, 1]; 'none' too), raw ([0, 255]), imagenet (torch-style mean/std), "
                         "caffe (Keras VGG/ResNet50: BGR, mean pixel subtracted), tf ([-1, 1]), demo (default: "
                         "the model's own where it says, e.g. a Keras Rescaling layer; else imagenet for RGB, "
                         "unit otherwise, with a note)")
    add_input_arguments(ex)  # --logits / --probabilities
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
    _io.add_write_options(ex)  # --overwrite, --quiet
    _images.add_image_options(ex)  # --resize, --plain
    _io.add_explain_options(ex)  # --call (--output above; --logits: add_input_arguments above)
    add_table_arguments(ex)  # --data, --columns, --top


def _parse_target(text: str) -> int | None:
    if text.strip().lower() in ("top1", "top-1", "auto"):
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--target must be 'top1' or a class index (an int); got {text!r}") from None


def run(args: argparse.Namespace) -> None:
    import warnings

    import numpy as np
    from tqdm import tqdm

    from .. import render
    from ..backends import backend_for
    from ..demo.runner import TITLES, explain_methods, method_row, picture
    from ..errors import SaturationWarning
    from ..methods import METHODS, method_names
    from ._inputs import plan_inputs

    if args.data is not None:
        from .explain_table import explain_table

        return explain_table(args)
    if not args.images:
        raise InputError("give one or more IMAGE files (or --data FILE for a table).")
    if args.target == "detection" or args.model == "demo-detector":
        from .explain_boxes import explain_boxes

        return explain_boxes(args)
    methods = method_names(args.method)
    target = _parse_target(args.target)
    _images.check_size(args.size)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1]; got {args.alpha}")
    render.colorize(np.zeros((1, 1)), args.cmap)  # an unknown colormap fails now, not after the work
    paths = check_images(args.images)
    names = stems(paths)
    suffixes = ["grid"] if args.method == "all" else methods
    _io.check_outputs(args, [Path(args.out) / f"{n}_{s}.png" for n in names for s in suffixes], paths)

    model, info = load(args)
    plan = plan_inputs(model, info, args.size, args.preprocess, args.logits)  # channels, rank, size, scaling, logits
    size = max(plan.size)
    if args.logits is False:  # --probabilities: the user chose them knowingly
        warnings.simplefilter("ignore", SaturationWarning)
    layer = None if args.layer == "auto" else args.layer
    uses_layer = [m for m in methods if METHODS[m].uses_layer]
    if layer is not None:
        if uses_layer:
            backend_for(model).resolve_layer(model, layer)  # an unknown name fails before any work
        else:
            warn(f"--layer is used only by gradcam and the other CAM methods; ignored for {methods[0]}")
    sg = {k: v for k, v in (("samples", args.samples), ("noise", args.noise)) if v is not None}
    key = args.output
    pick = {} if key is None else {"output": int(key) if key.lstrip("-").isdigit() else key}
    options: dict[str, dict[str, Any]] = {m: {**pick, "logits": plan.logits} for m in methods}
    options["smoothgrad"] = {**pick, "seed": 0, **sg, "logits": plan.logits}
    _io.method_options(args, options, methods)  # --call
    methods = _io.methods_with_layer(model, plan.blank(), methods, layer, args)  # --method all: skip CAM if no map
    draw = max(size, MIN_PICTURE)
    titles = [TITLES["input"]] + [TITLES[m] for m in methods]
    out = out_dir(args.out)
    _io.print_mapping(paths, names)

    # One step per image and method, so the bar moves within a batch too.
    bar = _io.progress(len(paths) * len(methods), "map", args)
    with bar, _io.inner_progress(args):  # SmoothGrad's samples get their own bar
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start:start + args.batch_size]
            x, shown = plan.read(chunk, draw, args.resize)

            def done(_method: str, k: int = len(chunk)) -> None:
                bar.update(k)

            exps = explain_methods(model, x, methods, target=target, layer=layer, options=options, done=done)
            plan.as_images(exps)  # flat (N, H*W) inputs: maps get the image's shape
            first = next(iter(exps.values()))
            cams = [m for m in uses_layer if m in exps]  # none when --method all skipped them (no spatial layer)
            if start == 0 and layer is None and cams:
                plan.notes.append(f"Grad-CAM layer {exps[cams[0]].layer!r} (automatic: the last convolution's "
                                  "output, on a transformer the input of the last block's attention; --layer NAME "
                                  "to choose, 'gradsight layers' lists them)")
            plan.flush_notes()
            for i, name in enumerate(names[start:start + len(chunk)]):
                if len(methods) > 1:
                    row = method_row(exps, i, shown[i], args.cmap, args.alpha)
                    grid = _io.labelled_grid(args, exps, i, row, titles, info.class_name)  # unless --plain
                    written = [render.save_png(grid, out / f"{name}_grid.png")]
                else:
                    written = [
                        render.save_png(_io.labelled_picture(args, e, i, picture(e, i, shown[i], args.cmap, args.alpha),
                                                             info.class_name), out / f"{name}_{m}.png")
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
