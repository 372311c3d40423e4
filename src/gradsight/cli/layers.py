"""``gradsight layers``: every layer call of a model with its output shape."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from ..errors import GradsightError, GradsightWarning
from ._common import load

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    ly = subs.add_parser(
        "layers", parents=parents, help="list a model's layers and output shapes",
        description="Run one forward pass on a blank input and list every layer call in order with its output "
                    "shape; '<- auto' marks the layer Grad-CAM uses with --layer auto.",
    )
    ly.add_argument("--size", type=int, metavar="N", help="input size NxN (default: the model's, else 224)")


def run(args: argparse.Namespace) -> None:
    from .._locks import locked
    from ..backends import backend_for
    from ._inputs import plan_inputs

    model, info = load(args)
    blank = plan_inputs(model, info, args.size, None, for_explain=False).blank()  # the model's channels and rank
    shape = blank.shape
    bk = backend_for(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradsightWarning)  # explanation warnings (softmax) are not for `layers`
        with locked(model), bk.session(model, eval_mode=True):  # a train-mode BatchNorm would learn from the blank input
            x = bk.prepare_input(model, blank)
            rows = bk.layers(model, x)
            try:
                _, auto_name = bk.activations(model, x, "auto")
            except GradsightError:
                auto_name = None
    ch = bk.activation_channel_axis() % 4
    spatial = [a for a in (1, 2, 3) if a != ch]

    def is_spatial(s: Any) -> bool:
        return s is not None and len(s) == 4 and s[spatial[0]] * s[spatial[1]] > 1

    def is_tokens(s: Any) -> bool:  # (N, T, C) of an image model: a transformer's patch tokens
        return s is not None and len(s) == 3 and len(shape) == 4

    auto = max((k for k, r in enumerate(rows) if r[0] == auto_name and (is_spatial(r[2]) or is_tokens(r[2]))),
               default=None)
    table = [("layer", "type", "output shape")] + [
        (name, kind, "-" if s is None else str(tuple(s))) for name, kind, s in rows
    ]
    widths = [max(len(r[c]) for r in table) for c in range(3)]
    print(f"{info.description}: input {shape}, {len(rows)} layer calls")
    for k, r in enumerate(table):
        line = "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
        if k - 1 == auto:
            line = f"{line.ljust(sum(widths) + 4)}  <- auto"
        print(line)
    if auto is None:
        print("no layer has a spatial 4-D output: Grad-CAM cannot run on this model")
