"""``gradsight run``: explain a whole data set into a resumable output folder (docs/run-format.md).

Exit status: 0 when every image was explained, 3 when the job finished but some images
failed (their rows say why; ``--retry-failed`` tries them again), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command to the ``gradsight`` subparsers."""
    p = subs.add_parser(
        "run", parents=list(parents), help="explain every image of a data set (streaming, resumable, Ray-ready)",
        description="Explain every image of a data set with one or more methods. Writes DIR/manifest.parquet (one "
                    "row per image and method), DIR/attributions/part-NNNNN.npz, DIR/summary.md and "
                    "DIR/class_means.png. Killed or crashed? Rerun the same command: it finishes the rest. "
                    "Exit status 0 when every image was explained, 3 when some failed, 2 on bad input.",
    )
    p.add_argument("--data", required=True, metavar="SOURCE",
                   help="'demo' or 'demo:N' (generated shapes images), a folder (recursive; sub-folder names are "
                        "the classes), a .csv/.parquet list (column 'path', optional 'label') or a glob")
    p.add_argument("--method", default="gradcam", metavar="LIST",
                   help="comma-separated methods: saliency, smoothgrad, deconvnet, guided_backprop, gradcam, "
                        "guided_gradcam (default: gradcam)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; rerun to resume)")
    p.add_argument("--target", default="top1", choices=("top1", "label", "top5"),
                   help="class explained: the prediction (default), the true label, or the top five")
    p.add_argument("--layer", default="auto", metavar="auto|NAME", help="Grad-CAM layer (default: auto)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per model call (default: 32)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (this machine, default) or ray (Ray Data actors)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="local: image reader processes; ray: model actors (default: 2)")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join (e.g. 'auto' on a cluster node); default: start a local Ray")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="attribution storage type (float16 halves the size)")
    p.add_argument("--png", action="store_true", help="also write an overlay PNG per image and method")
    p.add_argument("--size", type=int, metavar="N", help="model input size NxN (default: the model's, else 224)")
    p.add_argument("--preprocess", choices=("imagenet", "none", "demo"),
                   help="input normalisation (default: the model's own; 'imagenet' for your models)")
    p.add_argument("--seed", type=int, default=0, help="seed of SmoothGrad's noise and of the demo set (default: 0)")
    p.add_argument("--samples", type=int, help="SmoothGrad: noisy copies (default: 50)")
    p.add_argument("--noise", type=float, help="SmoothGrad: noise level (default: 0.15)")
    p.add_argument("--overwrite", action="store_true", help="replace a different run found in DIR")
    p.add_argument("--retry-failed", action="store_true", help="explain again the images that failed before")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no final line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the job; returns the exit status (0: nothing failed, 3: some images failed)."""
    from ..datasets import explain_dataset

    _check_out_outside_data(args.data, args.out)
    result = explain_dataset(
        args.model, args.data, args.out, args.method, weights=args.weights, framework=args.framework,
        trust_pickle=args.trust_pickle, target=args.target, layer=args.layer, batch_size=args.batch_size,
        engine=args.engine, workers=args.workers, address=args.address, dtype=args.dtype, png=args.png,
        size=args.size, preprocess=args.preprocess, seed=args.seed, samples=args.samples, noise=args.noise,
        overwrite=args.overwrite, retry_failed=args.retry_failed, quiet=args.quiet,
    )
    if not args.quiet:
        failed = f", {result.failed} failed (see {result.out}/summary.md)" if result.failed else ""
        print(f"done: {result.images} images, {result.ok} explained{failed}; this run {result.processed} images in "
              f"{result.elapsed_s:.1f} s ({result.throughput:.1f} images/s) -> {result.out}", file=sys.stderr)
    return result.exit_status


def _check_out_outside_data(data: str, out: str) -> None:
    """Never write into the images being explained (issue 9): a folder ``--data`` is read
    recursively, so an ``--out`` inside it would also change the data set of the next run."""
    import os

    from ..errors import InputError

    if not os.path.isdir(data):
        return
    folder, target = os.path.realpath(data), os.path.realpath(out)
    if target == folder or target.startswith(folder.rstrip(os.sep) + os.sep):
        raise InputError(f"--out {out} is inside --data {data}: the run would write among the images it reads "
                         "(and the next run would read its outputs as images); choose an --out outside the data folder.")
