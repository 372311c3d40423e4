"""Shared output and console handling of the CLI commands (used through :mod:`._common` and by
each command): the output plan (:class:`gradsight.outputs.OutputPlan`: refuse clashes before
any work, never write over an input, atomic writes), the API's options as flags, API words
in messages as CLI flags, captioned pictures, progress bars and TensorFlow's native log noise.
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

from ..outputs import OutputPlan

__all__ = [
    "add_explain_options", "add_write_options", "check_outputs", "cli_words", "cwd_on_path", "inner_progress",
    "labelled_box", "labelled_box_grid", "labelled_grid", "labelled_picture", "method_options",
    "methods_with_layer", "print_mapping", "progress", "quiet_native_logs", "show_progress",
]


def add_write_options(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` (and ``--quiet``) for a command that writes files."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (default: refuse, listing them, before any work)")
    if not any("--quiet" in a.option_strings for a in parser._actions):
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


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
    """``--output`` (unless the command has it already), ``--call``: API options that error messages may
    point at (``--logits`` / ``--probabilities`` come from :func:`gradsight.cli._inputs.add_arguments`)."""
    g = parser.add_argument_group("model outputs and layers")
    if not any("--output" in a.option_strings for a in parser._actions):
        g.add_argument("--output", metavar="INDEX|KEY",
                       help="for models with several outputs: the index or key of the one to explain")
    g.add_argument("--call", type=int, metavar="N",
                   help="Grad-CAM: which call of a layer used several times in one forward pass (default: -1, the last)")


def method_options(args: argparse.Namespace, options: dict[str, dict[str, Any]], methods: Sequence[str]) -> None:
    """Add ``--output``/``--call`` to every method's options (in place; ``logits`` is the input plan's)."""
    from ..methods import METHODS

    output = getattr(args, "output", None)
    if output is not None and str(output).lstrip("-").isdigit():
        output = int(output)
    for m in methods:
        opts = options.setdefault(m, {})
        if output is not None:
            opts["output"] = output
        if getattr(args, "call", None) is not None and METHODS[m].uses_layer:
            opts["call"] = args.call


def methods_with_layer(model: Any, blank: np.ndarray, methods: list[str], layer: Any,
                       args: argparse.Namespace) -> list[str]:
    """``--method all`` on a model without a spatial layer: the CAM methods are skipped with one note
    (``blank``: one zero sample in the model's input shape, for a forward pass)."""
    from .._locks import locked
    from ..backends import backend_for
    from ..errors import LayerNotCalledError
    from ..methods import METHODS

    cam = [m for m in methods if METHODS[m].uses_layer]
    if getattr(args, "method", None) != "all" or layer is not None or not cam:
        return methods
    bk = backend_for(model)
    try:
        with locked(model), bk.session(model, eval_mode=True) as run:  # forward only, on a blank image
            run.activations(model, run.prepare_input(model, blank), run.resolve_layer(model, "auto"))
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
    from .. import render
    from ..render._labels import GRADIENT_IMAGE_METHODS

    if getattr(args, "plain", False):
        return picture
    cmap = None if exp.method in GRADIENT_IMAGE_METHODS and exp.attributions.ndim == 4 else args.cmap
    return render.labelled(picture, render.caption(exp, i, class_names=class_name), cmap)


def labelled_grid(args: argparse.Namespace, exps: dict[str, Any], i: int, row: list[Any], titles: list[str],
                  class_name: Any = None) -> Any:
    """Sample ``i``'s grid: columns titled (with the layer for CAM methods), the row labelled with the
    explained class and score, a colour bar at the right; ``--plain``: titles only."""
    from .. import render

    label = render.caption(next(iter(exps.values())), i, class_names=class_name, with_method=False)
    return _grid(args, row, titles, list(exps.values()), label)


def _grid(args: argparse.Namespace, row: list[Any], titles: list[str], exps: list[Any], label: list[str]) -> Any:
    from .. import render

    if getattr(args, "plain", False):
        return render.grid([row], titles=titles)
    titles = [titles[0]] + [
        f"{t} ({e.layer})" if e.method in ("gradcam", "guided_gradcam") and e.layer else t
        for t, e in zip(titles[1:], exps)
    ]
    return render.with_colorbar(render.grid([row], titles=titles, row_labels=label), args.cmap)


def labelled_box(args: argparse.Namespace, exp: Any, tile: Any, box_label: str) -> Any:
    """A detector's picture of one box: the method (and layer) and the box's class and score above it."""
    from .. import render
    from ..render._labels import GRADIENT_IMAGE_METHODS, METHOD_TITLES

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
    from .. import _progress

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
