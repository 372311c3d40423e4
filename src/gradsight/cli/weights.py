"""``gradsight weights``: a table of weight statistics per layer."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError
from ._common import load

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    we = subs.add_parser(
        "weights", parents=parents, help="table of weight statistics per layer",
        description="Print, for every weight tensor: shape, mean, std, L2 norm, fraction near zero.",
    )
    we.add_argument("--atol", type=float, default=1e-3, help="'near zero' means |w| <= ATOL (default: 1e-3)")


def run(args: argparse.Namespace) -> None:
    from .. import inspect

    if not args.atol >= 0:
        raise InputError(f"--atol must be >= 0; got {args.atol}")
    model, _ = load(args, images=False)
    print(inspect.format_weight_stats(inspect.weight_stats(model, atol=args.atol)))
