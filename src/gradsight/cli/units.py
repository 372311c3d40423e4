"""``gradsight units``: the hidden units of a 2-D-input network as lines over its decision regions."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import load

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    un = subs.add_parser(
        "units", parents=parents, help="hidden units of a 2-D-input network as lines over its decision regions",
        description="For a network whose first layer is a linear map from R^2 (e.g. 'demo-mlp': Linear(2, 8) - "
                    "ReLU - Linear(8, 2) on two moons), draw each hidden unit's line w.x + b = 0 with an arrow "
                    "along w, over the decision regions.",
    )
    un.add_argument("--out", required=True, metavar="UNITS.png", help="the picture")


def run(args: argparse.Namespace) -> None:
    from .. import inspect

    model, info = load(args, images=False)
    classes = info.class_names
    data = labels = None
    if args.model.strip() == "demo-mlp":
        from ..demo.mlp import make_moons

        data, labels = make_moons(200, seed=1)  # test points: never trained on
    img = inspect.hidden_units(model, data, labels, class_names=classes, path=args.out)
    print(f"{args.out} ({img.width}x{img.height})")
