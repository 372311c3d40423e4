"""``gradsight demo``: every method on generated shapes images with the bundled model."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    dm = subs.add_parser(
        "demo", parents=parents, help="run every method on generated shapes images with the bundled model",
        description="Generate a few shapes images, explain the bundled model's predictions with all six "
                    "methods, and write one grid per image plus demo_grid.png with all of them.",
    )
    dm.add_argument("--out", default="demo-output", metavar="DIR", help="output folder (default: demo-output)")
    dm.add_argument("--framework", choices=("torch", "keras"), default="torch",
                    help="the PyTorch model (default) or its Keras twin")
    dm.add_argument("--n", type=int, default=6, metavar="N", help="number of images (default: 6)")


def run(args: argparse.Namespace) -> None:
    import time

    from ..demo.runner import run_demo

    if args.n < 1:
        raise InputError(f"--n must be at least 1; got {args.n}")
    t0 = time.perf_counter()
    run_demo(args.out, framework=args.framework, n=args.n)
    print(f"done in {time.perf_counter() - t0:.1f} s")
