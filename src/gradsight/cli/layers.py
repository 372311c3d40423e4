"""``gradsight layers``: every layer call of a model with its output shape."""

from __future__ import annotations

import argparse
from typing import Any

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
    from ..inspect import layer_calls
    from ._inputs import plan_inputs

    model, info = load(args)
    blank = plan_inputs(model, info, args.size, None, for_explain=False).blank()  # the model's channels and rank
    calls, auto = layer_calls(model, blank)
    table = [("layer", "type", "output shape")] + [
        (c.name, c.kind, "-" if c.shape is None else str(c.shape)) for c in calls
    ]
    widths = [max(len(r[c]) for r in table) for c in range(3)]
    print(f"{info.description}: input {blank.shape}, {len(calls)} layer calls")
    for k, r in enumerate(table):
        line = "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
        if k - 1 == auto:
            line = f"{line.ljust(sum(widths) + 4)}  <- auto"
        print(line)
    if auto is None:
        print("no layer has a spatial 4-D output: Grad-CAM cannot run on this model")
