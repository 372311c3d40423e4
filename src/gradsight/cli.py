"""The ``gradsight`` command line: ``explain``, ``layers`` and ``demo``.

Exit status: 0 on success, 2 on bad input (a missing or unreadable file, an unknown
method or layer, any :class:`~gradsight.errors.GradsightError`), 1 on an unexpected
error, 130 when interrupted. Errors are one line on stderr
(``gradsight: error: ...``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import GradsightError, InputError

__all__ = ["main", "build_parser"]

PROG = "gradsight"
DEFAULT_SIZE = 224
MIN_PICTURE = 128  # pictures smaller than this are hard to look at; upscale for drawing


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in gradsight's format."""

    def error(self, message: str) -> NoReturn:
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see '{PROG} {sub} --help')" if sub else f" (see '{PROG} --help')"
        self.exit(2, f"{PROG}: error: {message}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gradsight`` command."""
    from . import __version__

    debug = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not reset a --debug given before it.
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback on errors")

    model = argparse.ArgumentParser(add_help=False)
    g = model.add_argument_group("model")
    g.add_argument("--model", required=True, metavar="SPEC",
                   help="'demo' (the bundled shapes CNN), 'demo-detector' (the bundled tiny YOLO), 'package.module:factory' (a function returning the "
                        "model), a pickled PyTorch model FILE.pt/.pth (needs --trust-pickle), or a Keras "
                        "FILE.keras/.h5")
    g.add_argument("--weights", metavar="FILE",
                   help="state_dict for a 'package.module:factory' or 'demo' model (read with "
                        "torch.load(weights_only=True); Keras: model.load_weights)")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled model file (unpickling runs code from the file)")
    g.add_argument("--framework", choices=("torch", "keras"),
                   help="for --model demo: the PyTorch model (default) or its Keras twin")

    parser = _Parser(
        prog=PROG,
        description="See why a CNN made a decision: saliency, SmoothGrad, deconvnet, guided backprop, "
                    "Grad-CAM and guided Grad-CAM as pictures.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options. Start with '{PROG} demo'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback on errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ex = subs.add_parser(
        "explain", parents=[model, debug], help="explain a model's decisions on image files",
        description="Explain a model's decision on each image: writes OUT/<stem>_<method>.png (the picture of "
                    "one method), or OUT/<stem>_grid.png for several (input and one picture per method).",
    )
    ex.add_argument("images", nargs="+", metavar="IMAGE", help="image files (anything Pillow reads)")
    ex.add_argument("--method", default="gradcam", metavar="NAME",
                    help="a method (gradsight.METHODS), a comma-separated list, or a group: 'all' (the six classic "
                         "methods), 'cams', 'gradients', 'every' (default: gradcam)")
    ex.add_argument("--target", default="top1", metavar="top1|INT|detection",
                    help="class to explain: each image's top-1 prediction (default) or a class index; "
                         "'detection' for YOLO-style detectors: one picture per detected box")
    ex.add_argument("--layer", default="auto", metavar="auto|NAME",
                    help="Grad-CAM layer: 'auto' (the last layer with a spatial output) or a name from "
                         f"'{PROG} layers'")
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

    ly = subs.add_parser(
        "layers", parents=[model, debug], help="list a model's layers and output shapes",
        description="Run one forward pass on a blank input and list every layer call in order with its output "
                    "shape; '<- auto' marks the layer Grad-CAM uses with --layer auto.",
    )
    ly.add_argument("--size", type=int, metavar="N", help="input size NxN (default: the model's, else 224)")

    dm = subs.add_parser(
        "demo", parents=[debug], help="run every method on generated shapes images with the bundled model",
        description="Generate a few shapes images, explain the bundled model's predictions with all six "
                    "methods, and write one grid per image plus demo_grid.png with all of them.",
    )
    dm.add_argument("--out", default="demo-output", metavar="DIR", help="output folder (default: demo-output)")
    dm.add_argument("--framework", choices=("torch", "keras"), default="torch",
                    help="the PyTorch model (default) or its Keras twin")
    dm.add_argument("--n", type=int, default=6, metavar="N", help="number of images (default: 6)")
    from .inspect._cli import register as register_inspect  # embed, filters, units, weights

    register_inspect(subs, parents=[debug])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gradsight`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False))
    run = {"explain": _explain, "layers": _layers, "demo": _demo}.get(args.command) or args.run
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            run(args)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except (GradsightError, OSError) as exc:
            if debug:
                raise
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except Exception as exc:
            if debug:
                raise
            print(f"{PROG}: error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)",
                  file=sys.stderr)
            return 1
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return text or type(exc).__name__


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


# --------------------------------------------------------------------------- explain


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from .models import load_model

    return load_model(args.model, weights=args.weights, trust_pickle=args.trust_pickle, framework=args.framework)


def _check_images(paths: Sequence[str]) -> list[Path]:
    """Fail on the first missing or unreadable image before any work (Pillow reads only headers here)."""
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"image file not found: {p}")
        if path.is_dir():
            raise InputError(f"{p} is a folder; pass image files (e.g. {p}/*.png)")
        _open_image(path).close()
        out.append(path)
    return out


def _open_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise InputError(f"cannot read {path}: not an image file Pillow can open") from None
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {_one_line(exc)}") from None


def _read_image(path: Path) -> Any:
    with _open_image(path) as im:
        try:
            return im.convert("RGB")
        except OSError as exc:  # a truncated or corrupt file fails only when decoded
            raise InputError(f"cannot read image {path}: {_one_line(exc)}") from None


def _stems(paths: Sequence[Path]) -> list[str]:
    """Output names: the file stems, made unique (a/x.png, b/x.png -> x, x_2)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        out.append(p.stem if seen[p.stem] == 1 else f"{p.stem}_{seen[p.stem]}")
    return out


def _parse_target(text: str) -> int | None:
    if text.strip().lower() in ("top1", "top-1", "auto"):
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--target must be 'top1' or a class index (an int); got {text!r}") from None


def _explain(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from . import render
    from .backends.base import backend_for
    from .demo.runner import TITLES, explain_methods, method_row, picture
    from .methods import METHODS, method_names
    from .models import preprocess

    if args.target == "detection" or args.model == "demo-detector":
        from .detection_cli import explain_detector

        return explain_detector(args)
    methods = method_names(args.method)
    target = _parse_target(args.target)
    if args.size is not None and args.size < 8:
        raise InputError(f"--size must be at least 8 pixels; got {args.size}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1]; got {args.alpha}")
    render.colorize(np.zeros((1, 1)), args.cmap)  # an unknown colormap fails now, not after the work
    paths = _check_images(args.images)

    model, info = _load(args)
    size = args.size or info.input_size or DEFAULT_SIZE
    prep = args.preprocess or info.preprocessing
    layer = None if args.layer == "auto" else args.layer
    uses_layer = [m for m in methods if METHODS[m].uses_layer]
    if layer is not None:
        if uses_layer:
            backend_for(model).resolve_layer(model, layer)  # an unknown name fails before any work
        else:
            print(f"{PROG}: warning: --layer is used only by gradcam and guided_gradcam; ignored for {methods[0]}",
                  file=sys.stderr)
    sg = {k: v for k, v in (("samples", args.samples), ("noise", args.noise)) if v is not None}
    options = {"smoothgrad": {"seed": 0, **sg}}
    draw = max(size, MIN_PICTURE)
    titles = [TITLES["input"]] + [TITLES[m] for m in methods]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = _stems(paths)

    # One step per image and method, so the bar moves within a batch too.
    bar = tqdm(total=len(paths) * len(methods), unit="map", file=sys.stderr, disable=len(paths) < 2, leave=False)
    with bar:
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start:start + args.batch_size]
            originals = [_read_image(p) for p in chunk]
            small = np.stack([np.asarray(im.resize((size, size), Image.Resampling.BILINEAR)) for im in originals])
            shown = np.stack([np.asarray(im.resize((draw, draw), Image.Resampling.BICUBIC)) for im in originals])
            x = preprocess(small, prep, info.layout)
            exps = explain_methods(model, x, methods, target=target, layer=layer, options=options,
                                   done=lambda _m, k=len(chunk): bar.update(k))
            first = next(iter(exps.values()))
            for i, name in enumerate(names[start:start + len(chunk)]):
                if len(methods) > 1:
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


# --------------------------------------------------------------------------- layers


def _layers(args: argparse.Namespace) -> None:
    import numpy as np

    from .backends.base import backend_for

    model, info = _load(args)
    size = args.size or info.input_size or DEFAULT_SIZE
    shape = (1, 3, size, size) if info.layout == "NCHW" else (1, size, size, 3)
    bk = backend_for(model)
    with bk.session(model, eval_mode=True):  # a train-mode BatchNorm would learn from the blank input
        rows = bk.layers(model, bk.prepare_input(model, np.zeros(shape, np.float32)))
    ch = bk.activation_channel_axis() % 4
    spatial = [a for a in (1, 2, 3) if a != ch]

    def is_spatial(s: Any) -> bool:
        return s is not None and len(s) == 4 and s[spatial[0]] * s[spatial[1]] > 1

    auto = max((k for k, r in enumerate(rows) if is_spatial(r[2])), default=None)
    table = [("layer", "type", "output shape")] + [
        (name, kind, "-" if s is None else str(tuple(s))) for name, kind, s in rows
    ]
    widths = [max(len(r[c]) for r in table) for c in range(3)]
    print(f"{info.description}: input {shape} ({info.layout}), {len(rows)} layer calls")
    for k, r in enumerate(table):
        line = "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
        if k - 1 == auto:
            line = f"{line.ljust(sum(widths) + 4)}  <- auto"
        print(line)
    if auto is None:
        print("no layer has a spatial 4-D output: Grad-CAM cannot run on this model")


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> None:
    import time

    from .demo.runner import run_demo

    if args.n < 1:
        raise InputError(f"--n must be at least 1; got {args.n}")
    t0 = time.perf_counter()
    run_demo(args.out, framework=args.framework, n=args.n)
    print(f"done in {time.perf_counter() - t0:.1f} s")
