"""``gradsight explain --data table.csv``: explain a model of feature vectors, one bar chart per row.

The rows of a CSV file (a header row names the columns; ``--columns a,b,c`` picks the
model's features in its input order, default: every column) or of a 2-D ``.npy`` array
(``--columns`` then names its F columns) are the model's (N, F) input, used as they are
(no scaling: the values must already be what the model expects). Each row is explained
with each gradient method (saliency, smoothgrad, integrated_gradients, input_x_gradient,
deconvnet, guided_backprop); CAM methods have no map to make on a table and are refused
with the reason. Files: ``OUT/<stem>_row<i>_<method>.png``, a bar chart of the row's
``--top`` features (red raises the explained score, blue lowers it); one line per row on
stdout with the prediction and the top features.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import _io
from ._common import load, out_dir

__all__ = ["add_table_arguments", "explain_table", "read_table"]


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--columns``, ``--top`` for ``explain``."""
    tab = parser.add_argument_group("tables (models of feature vectors, instead of IMAGE files)")
    tab.add_argument("--data", metavar="FILE", help="a .csv file with a header row, or a 2-D .npy array: one row "
                                                    "per sample, already scaled as the model expects")
    tab.add_argument("--columns", metavar="A,B,...", help="CSV: the columns to feed the model, in its input order "
                                                          "(default: all); .npy: names for its columns")
    tab.add_argument("--top", type=int, default=10, metavar="K", help="features drawn per row (default: 10)")


def read_table(path: Path, columns: str | None) -> tuple[np.ndarray, list[str]]:
    """``(x (N, F) float32, feature names)`` from a CSV (header row) or a 2-D ``.npy`` file."""
    wanted = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
    if not path.is_file():
        raise InputError(f"--data {path}: no such file.")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"--data {path}: not a numpy .npy array ({e}).") from None
        if arr.ndim != 2 or arr.dtype.kind not in "iuf":
            raise InputError(f"--data {path}: expected a 2-D numeric array (rows x features); got {arr.dtype} "
                             f"of shape {arr.shape}.")
        names = wanted or [f"feature {j}" for j in range(arr.shape[1])]
        if len(names) != arr.shape[1]:
            raise InputError(f"--columns names {len(names)} columns but {path} has {arr.shape[1]}.")
        return arr.astype(np.float32), names
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise InputError(f"--data {path}: expected a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    names = wanted or header
    missing = [c for c in names if c not in header]
    if missing:
        raise InputError(f"--columns {', '.join(missing)} not in {path}; its columns: {', '.join(header)}.")
    idx = [header.index(c) for c in names]
    x = np.empty((len(rows) - 1, len(idx)), np.float32)
    for r, row in enumerate(rows[1:]):
        for j, c in enumerate(idx):
            try:
                x[r, j] = float(row[c])
            except (ValueError, IndexError):
                cell = row[c] if c < len(row) else ""
                raise InputError(f"--data {path}: row {r + 1}, column {header[c]!r} is {cell!r}, not a number; "
                                 "pick numeric columns with --columns.") from None
    return x, names


def explain_table(args: argparse.Namespace) -> None:
    """``explain`` for tables (called by :mod:`gradsight.cli.explain` when ``--data`` is given)."""
    from tqdm import tqdm

    from .. import api, render
    from ..methods import METHODS, method_names
    from ._inputs import decide_logits, note

    if args.images:
        raise InputError("give IMAGE files or --data FILE, not both.")
    methods = method_names(args.method)
    cams = [m for m in methods if METHODS[m].uses_layer]
    if cams:
        raise InputError(
            f"{', '.join(cams)}: a CAM method maps a layer's spatial positions onto the input, and a table has none "
            "(its features have no order or neighbours). Use --method saliency, smoothgrad, integrated_gradients "
            "or input_x_gradient (or 'gradients')."
        )
    if args.top < 1:
        raise InputError(f"--top must be at least 1; got {args.top}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    target = None if args.target in ("top1", "top-1", "auto") else _int_target(args.target)
    path = Path(args.data)
    x, names = read_table(path, args.columns)
    stem = path.stem
    outputs = [Path(args.out) / f"{stem}_row{i}_{m}.png" for i in range(len(x)) for m in methods]
    _io.check_outputs(args, outputs, [path])
    model, info = load(args, images=False)
    notes: list[str] = []
    logits = decide_logits(model, x[:1], args.logits, notes)
    options: dict[str, Any] = {"logits": logits}
    if args.output is not None:
        options["output"] = int(args.output) if args.output.lstrip("-").isdigit() else args.output
    sg = {k: v for k, v in (("samples", args.samples), ("noise", args.noise)) if v is not None}
    out = out_dir(args.out)
    bar = _io.progress(len(x) * len(methods), "row", args)
    with bar:
        for start in range(0, len(x), args.batch_size):
            chunk = x[start:start + args.batch_size]
            exps = {}
            for m in methods:
                extra = {"seed": 0, **sg} if m == "smoothgrad" else {}
                exps[m] = api.explain(model, chunk, m, target, **options, **extra)
                bar.update(len(chunk))
            for note_text in notes:
                note(note_text)
            notes.clear()
            for i in range(len(chunk)):
                written = []
                for m, e in exps.items():
                    bars = render.feature_bars(np.asarray(e.attributions)[i], names, args.top, title=" / ".join(
                        render.caption(e, i, None, info.class_name)))
                    written.append(render.save_png(bars, out / f"{stem}_row{start + i}_{m}.png"))
                tqdm.write(_row_line(path, start + i, exps[methods[0]], i, names, args.top, info) +
                           f" -> {', '.join(str(w) for w in written)}", file=sys.stdout)


def _int_target(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--target must be 'top1' or a class index (an int); got {text!r}") from None


def _row_line(path: Path, row: int, exp: Any, i: int, names: list[str], top: int, info: Any) -> str:
    attr = np.asarray(exp.attributions[i])
    order = np.argsort(-np.abs(attr), kind="stable")[:top]
    feats = ", ".join(f"{names[j]} {attr[j]:+.4g}" for j in order)
    what = f"score {float(exp.scores[i]):.4g}"
    if exp.targets is not None:
        k = int(exp.targets[i])
        name = info.class_name(k)
        what = f"class {k}{f' ({name})' if name else ''} {what}"
    return f"{path} row {row}: {exp.method} of {what}; top features: {feats}"
