"""Shared file handling of the CLI commands: reading images, planning outputs, console output.

Reading images (:func:`check_images`, :func:`read_image`, :func:`square`):

- every input is opened *and decoded* before the model runs, so a truncated or corrupt
  file in the middle of a list stops the command (exit 2, one line naming it) before the
  first output is written — never after half the outputs;
- 16-bit images (``I;16`` PNGs, 32-bit integer TIFFs) are scaled to 8 bits, not clipped
  (clipping turns a 16-bit grayscale photo almost white);
- the EXIF orientation tag is applied (phone photos come upright);
- an image over Pillow's decompression-bomb limit is an :class:`InputError` (exit 2);
- ``--resize fit|crop|squash`` says how a non-square picture becomes the model's square
  input; ``squash`` (the default, the historical behaviour) is announced once per run.

Outputs go through :class:`gradsight.outputs.OutputPlan` (see there for the rules).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .outputs import OutputPlan

__all__ = [
    "MAX_SIZE",
    "add_write_options",
    "check_images",
    "check_outputs",
    "check_size",
    "progress",
    "read_image",
    "square",
]

MAX_SIZE = 2048
"""Largest ``--size``: a 2048x2048 float32 batch of 8 with gradients already takes gigabytes."""

RESIZE_MODES = ("squash", "fit", "crop")


def add_write_options(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` (and ``--quiet``) for a command that writes files."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (default: refuse, listing them, before any work)")
    if not any("--quiet" in a.option_strings for a in parser._actions):
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """``--resize`` and ``--plain`` for commands that read pictures and draw explanations."""
    parser.add_argument("--plain", action="store_true",
                        help="bare pictures: no caption (method, class, score, layer), no colour bar")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="squash",
                        help="how a non-square image becomes the model's square input: 'squash' (stretch, the "
                             "default), 'fit' (whole image, padded with black bars) or 'crop' (centre square)")


def check_size(size: int | None) -> None:
    """``--size`` within [8, MAX_SIZE]."""
    if size is not None and not 8 <= size <= MAX_SIZE:
        raise InputError(f"--size must be between 8 and {MAX_SIZE} pixels; got {size}")


# --------------------------------------------------------------------------- reading


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read {path}: {exc}".rstrip(".") + "; it is too large to be a photo "
                         "(Pillow's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise InputError(f"cannot read {path}: not an image file Pillow can open") from None
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


def _decode(path: Path) -> Any:
    """The decoded image (``load()`` done), EXIF orientation applied."""
    from PIL import Image, ImageOps

    im = _open(path)
    try:
        im.load()
        return ImageOps.exif_transpose(im) or im
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data fails only when decoded
        raise InputError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


def check_images(paths: Sequence[str]) -> list[Path]:
    """Every file exists and decodes, checked before any work (a bad one: :class:`InputError` naming it)."""
    _announced.clear()  # a new run: its notes are shown once again
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"image file not found: {p}")
        if path.is_dir():
            raise InputError(f"{p} is a folder; pass image files (e.g. {p}/*.png)")
        _decode(path).close()
        out.append(path)
    seen: set[str] = set()
    unique = [p for p in out if not (os.path.realpath(p) in seen or seen.add(os.path.realpath(p)))]  # type: ignore[func-returns-value]
    if len(unique) < len(out):  # the same file twice would write the same outputs twice
        print(f"gradsight: note: {len(out) - len(unique)} repeated input file(s) explained once", file=sys.stderr)
    return unique


def to_rgb(im: Any) -> Any:
    """An RGB ``PIL.Image`` of ``im``; 16-bit and 32-bit integer images are scaled to 8 bits, not clipped."""
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def read_image(path: Path) -> Any:
    """The image at ``path`` as upright 8-bit RGB (``PIL.Image``)."""
    im = _decode(Path(path))
    try:
        return to_rgb(im)
    finally:
        im.close()


_announced: set[str] = set()


def square(im: Any, mode: str = "squash") -> Any:
    """``im`` made square by ``mode`` (``squash``: unchanged here, stretched by the later resize)."""
    from PIL import Image

    w, h = im.size
    if w == h:
        return im
    if mode == "crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return im.crop((left, top, left + s, top + s))
    if mode == "fit":
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), (0, 0, 0))
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas
    if "squash" not in _announced:
        _announced.add("squash")
        print(f"gradsight: note: non-square images ({w}x{h}) are squashed to a square; --resize fit or crop keeps "
              "their proportions", file=sys.stderr)
    return im


# --------------------------------------------------------------------------- outputs


def check_outputs(args: argparse.Namespace, outputs: Iterable[Path], inputs: Iterable[Path] = (),
                  patterns: Iterable[tuple[Path, str]] = ()) -> OutputPlan:
    """Plan ``outputs`` (and glob ``patterns`` for names known only later) and refuse clashes before any work."""
    plan = OutputPlan(inputs, overwrite=bool(getattr(args, "overwrite", False)))
    for p in outputs:
        plan.add(p)
    for folder, pattern in patterns:
        plan.add_pattern(folder, pattern)
    plan.check()
    return plan


def print_mapping(paths: Sequence[Path], names: Sequence[str]) -> None:
    """When names differ from the stems (inputs sharing a stem), say which input became which name."""
    renamed = [(p, n) for p, n in zip(paths, names) if n != p.stem]
    for p, n in renamed:
        print(f"{p} -> {n}_*", file=sys.stdout)


def cwd_on_path() -> None:
    """Let ``--model mypkg.nets:resnet`` find ``mypkg`` in the current folder from the console script too.

    ``python -m gradsight`` puts the current folder on ``sys.path``; the ``gradsight``
    console script does not. It is appended (not prepended as ``-m`` does), so a file in
    the current folder never shadows an installed module.
    """
    cwd = os.getcwd()
    if not any(p in ("", ".") or os.path.abspath(p) == cwd for p in sys.path):
        sys.path.append(cwd)


# --------------------------------------------------------------------------- the API's options as flags


def add_explain_options(parser: argparse.ArgumentParser) -> None:
    """``--output``, ``--logits``, ``--call``: the API options that error messages may point at."""
    g = parser.add_argument_group("model outputs and layers")
    g.add_argument("--output", metavar="INDEX|KEY",
                   help="for models with several outputs: the index or key of the one to explain")
    g.add_argument("--logits", action="store_true",
                   help="Keras models ending in a softmax: explain the pre-softmax scores (they do not saturate)")
    g.add_argument("--call", type=int, metavar="N",
                   help="Grad-CAM: which call of a layer used several times in one forward pass (default: -1, the last)")


def method_options(args: argparse.Namespace, options: dict[str, dict[str, Any]], methods: Sequence[str]) -> None:
    """Add ``--output``/``--logits``/``--call`` to every method's options (in place)."""
    from .methods import METHODS

    output = getattr(args, "output", None)
    if output is not None and str(output).lstrip("-").isdigit():
        output = int(output)
    for m in methods:
        opts = options.setdefault(m, {})
        if output is not None:
            opts["output"] = output
        if getattr(args, "logits", False):
            opts["logits"] = True
        if getattr(args, "call", None) is not None and METHODS[m].uses_layer:
            opts["call"] = args.call


def methods_with_layer(model: Any, info: Any, size: int, methods: list[str], layer: Any,
                       args: argparse.Namespace) -> list[str]:
    """``--method all`` on a model without a spatial layer: the CAM methods are skipped with one note."""
    from ._locks import locked
    from .backends.base import backend_for
    from .errors import LayerNotCalledError
    from .methods import METHODS

    cam = [m for m in methods if METHODS[m].uses_layer]
    if getattr(args, "method", None) != "all" or layer is not None or not cam:
        return methods
    bk = backend_for(model)
    shape = (1, 3, size, size) if info.layout == "NCHW" else (1, size, size, 3)
    try:
        with locked(model), bk.session(model, eval_mode=True):  # forward only, on a blank image
            bk.activations(model, bk.prepare_input(model, np.zeros(shape, np.float32)), "auto")
    except LayerNotCalledError:
        print(f"gradsight: note: no layer of this model has a spatial (4-D, larger than 1x1) output; skipping "
              f"{', '.join(cam)} (Grad-CAM needs one; see 'gradsight layers')", file=sys.stderr)
        return [m for m in methods if m not in cam]
    return methods


_API_OPTION = re.compile(r"(?<![\w.])(output|logits|layer|call|samples|noise)=([^\s,;]*)")


def cli_words(message: str) -> str:
    """An API message worded for the command line: ``output=INDEX`` -> ``--output INDEX``, ``logits=True`` -> ``--logits``."""
    def flag(m: Any) -> str:
        name, value = m.group(1), m.group(2)
        tail = ""
        while value and value[-1] in ".)":
            if value[-1] == ")" and value.count("(") >= value.count(")"):
                break
            tail, value = value[-1] + tail, value[:-1]
        if name == "logits":
            return ("--logits" if value in ("True", "") else "without --logits") + tail
        if name == "layer" and value == "None":
            return "--layer auto" + tail
        return f"--{name}" + (f" {value.strip(chr(39))}" if value else "") + tail

    return _API_OPTION.sub(flag, message)


# --------------------------------------------------------------------------- pictures


def labelled_picture(args: argparse.Namespace, exp: Any, i: int, picture: Any, class_name: Any = None) -> Any:
    """One method's picture of sample ``i`` with its caption and colour bar (unless ``--plain``)."""
    from . import render
    from .render._labels import GRADIENT_IMAGE_METHODS

    if getattr(args, "plain", False):
        return picture
    cmap = None if exp.method in GRADIENT_IMAGE_METHODS and exp.attributions.ndim == 4 else args.cmap
    return render.labelled(picture, render.caption(exp, i, class_names=class_name), cmap)


def labelled_grid(args: argparse.Namespace, exps: dict[str, Any], i: int, row: list[Any], titles: list[str],
                  class_name: Any = None) -> Any:
    """Sample ``i``'s grid: columns titled (with the layer for CAM methods), the row labelled with the
    explained class and score, a colour bar at the right; ``--plain``: titles only."""
    from . import render

    label = render.caption(next(iter(exps.values())), i, class_names=class_name, with_method=False)
    return _grid(args, row, titles, list(exps.values()), label)


def _grid(args: argparse.Namespace, row: list[Any], titles: list[str], exps: list[Any], label: list[str]) -> Any:
    from . import render

    if getattr(args, "plain", False):
        return render.grid([row], titles=titles)
    titles = [titles[0]] + [
        f"{t} ({e.layer})" if e.method in ("gradcam", "guided_gradcam") and e.layer else t
        for t, e in zip(titles[1:], exps)
    ]
    return render.with_colorbar(render.grid([row], titles=titles, row_labels=label), args.cmap)


def labelled_box(args: argparse.Namespace, exp: Any, tile: Any, box_label: str) -> Any:
    """A detector's picture of one box: the method (and layer) and the box's class and score above it."""
    from . import render
    from .render._labels import GRADIENT_IMAGE_METHODS, METHOD_TITLES

    if getattr(args, "plain", False):
        return tile
    head = METHOD_TITLES.get(exp.method, exp.method)
    if exp.method in ("gradcam", "guided_gradcam") and exp.layer:
        head += f" at layer {exp.layer!r}"
    cmap = None if exp.method in GRADIENT_IMAGE_METHODS and exp.attributions.ndim == 4 else args.cmap
    return render.labelled(tile, [head, box_label], cmap)


def labelled_box_grid(args: argparse.Namespace, row: list[Any], titles: list[str], exps: list[Any],
                      box_label: str) -> Any:
    """A detector's grid for one box: columns titled (CAM layers named), the row labelled with the box."""
    return _grid(args, row, titles, exps, [box_label])


# --------------------------------------------------------------------------- progress and noise


@contextmanager
def inner_progress(args: argparse.Namespace) -> Iterator[None]:
    """Bars for the steps inside one call (SmoothGrad's samples), shown like :func:`progress`."""
    from . import _progress

    bars: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        bar = bars.get(what)
        if bar is None or done < bar.n:  # a new call
            if bar is not None:
                bar.close()
            bar = bars[what] = progress(total, what.split()[-1], args, desc=what.rsplit(" ", 1)[0])
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            bars.pop(what, None)

    try:
        with _progress.reporting(update):
            yield
    finally:
        for bar in bars.values():
            bar.close()


@contextmanager
def quiet_native_logs(debug: bool) -> Iterator[None]:
    """Hide what TensorFlow's C++ side writes to the process's stderr (absl/oneDNN INFO lines,
    Grappler's "remapper failed" errors) for the duration of a command, unless ``--debug``.

    Those lines are written to file descriptor 2 directly, below Python, and no environment
    variable silences all of them, so fd 2 goes to ``os.devnull`` while ``sys.stderr`` (every
    gradsight message, warnings and the progress bar) keeps writing to the real stderr. Only
    the CLI does this, and only when ``sys.stderr`` is the process's fd 2; importing gradsight
    changes no logging setting.
    """
    try:
        real = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        real = -1
    if debug or real != 2:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    old = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                           errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr.close()
        sys.stderr = old


def show_progress(args: argparse.Namespace | None = None) -> bool:
    """Bars go to stderr only when it is a terminal, and not with ``--quiet``."""
    quiet = bool(getattr(args, "quiet", False))
    return not quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def progress(total: int, unit: str, args: argparse.Namespace | None = None, **kwargs: Any) -> Any:
    """A tqdm bar on stderr, shown only on a terminal and without ``--quiet``, once the work has
    taken 2 s (``GRADSIGHT_PROGRESS_DELAY`` seconds)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=not show_progress(args), leave=False,
                mininterval=0.5, delay=float(os.environ.get("GRADSIGHT_PROGRESS_DELAY", "2")), **kwargs)
