"""``gradsight filters``: a picture of a conv layer's kernels."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import load

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    fi = subs.add_parser(
        "filters", parents=parents, help="picture of a conv layer's kernels",
        description="Draw a 2-D conv layer's kernels: the first layer in colour, deeper ones as rows of grey "
                    "tiles (row = kernel, column = input channel), each kernel normalised on its own.",
    )
    fi.add_argument("--layer", metavar="NAME", help="conv layer (default: the first)")
    fi.add_argument("--out", required=True, metavar="GRID.png", help="the picture")


def run(args: argparse.Namespace) -> None:
    from .. import inspect

    model, _ = load(args, images=False)
    img = inspect.filters(model, layer=args.layer, path=args.out)
    print(f"{args.out} ({img.width}x{img.height})")
