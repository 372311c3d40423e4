"""``gradsight layers``: every layer call of a model with its output shape."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import DEFAULT_SIZE, load

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    ly = subs.add_parser(
        "layers", parents=parents, help="list a model's layers and output shapes",
        description="Run one forward pass on a blank input and list every layer call in order with its output "
                    "shape; '<- auto' marks the layer Grad-CAM uses with --layer auto.",
    )
    ly.add_argument("--size", type=int, metavar="N", help="input size NxN (default: the model's, else 224)")


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from .._locks import locked
    from ..backends import backend_for

    model, info = load(args)
    size = args.size or info.input_size or DEFAULT_SIZE
    shape = (1, 3, size, size) if info.layout == "NCHW" else (1, size, size, 3)
    bk = backend_for(model)
    with locked(model), bk.session(model, eval_mode=True) as run:  # a train-mode BatchNorm would learn from the blank input
        rows = run.layers(model, run.prepare_input(model, np.zeros(shape, np.float32)))
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
