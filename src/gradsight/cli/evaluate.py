"""``gradsight evaluate``: which explanation to trust, measured (faithfulness, localisation, sanity).

Writes OUT/report.md (method x metric table, mean and 95% bootstrap interval, the sanity
check in words), OUT/summary.csv, OUT/per_class.csv, OUT/curves.png (mean deletion and
insertion curves per method), OUT/sanity.csv and OUT/sanity.png. The numbers are those of
:func:`gradsight.evaluate.compare` on the same inputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import InputError

__all__ = ["add_parser", "run"]

TEST_SEED = 1  # the demo model's test images: never trained on


def add_parser(subs: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add the ``evaluate`` command to ``subs``."""
    p = subs.add_parser(
        "evaluate", parents=list(parents), help="score explanation methods: deletion, insertion, ROAD, pointing, sanity",
        description="Measure which explanation to trust: deletion/insertion AUC (RISE), ROAD, the pointing game "
                    "and energy pointing game (needs masks: --data demo), and the model-parameter randomisation "
                    "sanity check; a uniform random ranking is scored as the chance baseline.",
    )  # fmt: skip
    p.add_argument("--data", default="demo", metavar="demo|DIR",
                   help="'demo': generated shapes test images with object masks; or a folder with one sub-folder "
                        "of images per class (ImageFolder layout; no masks, so no pointing game)")  # fmt: skip
    p.add_argument("--n", type=int, default=100, metavar="N", help="number of demo images (default: 100)")
    p.add_argument("--methods", default="all", metavar="LIST|all",
                   help="comma-separated method names, or 'all' (default: the six classic methods)")  # fmt: skip
    p.add_argument("--metrics", default="deletion,insertion,road,pointing,sanity", metavar="LIST",
                   help="comma-separated: deletion, insertion, road, pointing, sanity (default: all)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the report (created if missing)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace report files that already exist in DIR (default: refuse, listing them, before any work)")
    p.add_argument("--step", type=float, metavar="S",
                   help="deletion/insertion step: pixels (>= 1) or a fraction of the image (< 1); default 1/224")
    p.add_argument("--tolerance", type=float, default=15, metavar="PX", help="pointing game tolerance (default: 15)")
    p.add_argument("--layer", metavar="NAME", help="Grad-CAM layer for gradcam and guided_gradcam (default: auto)")
    p.add_argument("--samples", type=int, default=16, metavar="K", help="SmoothGrad samples (default: 16)")
    p.add_argument("--sanity-images", type=int, default=8, metavar="K",
                   help="images used by the sanity check (default: 8)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline, noise and weights (default: 0)")
    p.add_argument("--size", type=int, metavar="N", help="resize images to NxN (default: the model's, else 224)")
    p.add_argument("--preprocess", choices=("imagenet", "none", "demo"),
                   help="input normalisation (default: the model's own)")  # fmt: skip
    p.set_defaults(run=run)


def _csv_list(text: str, what: str, allowed: Sequence[str]) -> list[str]:
    from ..errors import close_matches

    items = [t.strip() for t in text.split(",") if t.strip()]
    for t in items:
        if t not in allowed:
            raise InputError(f"unknown {what} {t!r}; choose from {', '.join(allowed)}.{close_matches(t, allowed)}")
    if not items:
        raise InputError(f"--{what}s is empty; give one or more of {', '.join(allowed)}")
    return items


def run(args: argparse.Namespace) -> None:
    """Run ``gradsight evaluate``."""
    import numpy as np
    from tqdm import tqdm

    from ..backends import backend_for
    from ..evaluate import METRICS, compare
    from ..methods import GROUPS, METHODS
    from ..models import load_model, preprocess

    methods = list(GROUPS["all"]) if args.methods.strip() == "all" else _csv_list(args.methods, "method", list(METHODS))
    metrics = _csv_list(args.metrics, "metric", METRICS)
    for name, value, low in (("--n", args.n, 1), ("--batch-size", args.batch_size, 1), ("--samples", args.samples, 1),
                             ("--sanity-images", args.sanity_images, 1)):  # fmt: skip
        if value < low:
            raise InputError(f"{name} must be at least {low}; got {value}")
    step: float | int = 1 / 224 if args.step is None else (int(args.step) if args.step >= 1 else args.step)
    if args.step is not None and args.step <= 0:
        raise InputError(f"--step must be > 0; got {args.step}")

    from pathlib import Path

    from ._io import check_outputs

    names = ["summary.csv", "per_class.csv", "report.md", "curves.png", "sanity.csv", "sanity.png"]
    check_outputs(args, [Path(args.out) / n for n in names],  # before any work; never over an input image
                  [p for p in Path(args.data).rglob("*") if p.is_file()] if args.data != "demo" else [])
    model, info = load_model(args.model, weights=args.weights, trust_pickle=args.trust_pickle, framework=args.framework)
    size = args.size or info.input_size or 224
    prep = args.preprocess or info.preprocessing
    masks = None
    if args.data == "demo":
        from ..demo.shapes import CLASSES, generate

        data = generate(args.n, seed=TEST_SEED, size=size)
        images, labels, masks, names = data.images, data.labels, data.masks, list(CLASSES)
    else:
        from ._common import read_image_folder as _read_folder

        images, labels, names = _read_folder(Path(args.data), size)
        if "pointing" in metrics:
            raise InputError("the pointing game needs object masks, which only --data demo has; "
                             "leave 'pointing' out of --metrics")  # fmt: skip
    x = preprocess(images, prep, info.layout)
    opts: dict[str, dict[str, Any]] = {"smoothgrad": {"samples": args.samples, "seed": args.seed}}
    if args.layer:
        backend_for(model).resolve_layer(model, args.layer)  # an unknown name fails before any work
        opts.update({"gradcam": {"layer": args.layer}, "guided_gradcam": {"layer": args.layer}})

    per_method = 1 + sum(m in metrics for m in ("deletion", "insertion", "road", "pointing"))
    total = (len(methods) + 1) * per_method
    if "sanity" in metrics:
        total += len(methods) * (1 + len(backend_for(model).parameter_layers(model)))
    bar = tqdm(total=total, unit="step", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)
    with bar:
        def tick(stage: str) -> None:
            bar.set_postfix_str(stage)
            bar.update(1)

        result = compare(model, x, methods, metrics, labels=labels, masks=masks, class_names=names, step=step,
                         tolerance=args.tolerance, batch_size=args.batch_size, seed=args.seed, explain_options=opts,
                         sanity_images=args.sanity_images, progress=tick)  # fmt: skip
    written = result.write(args.out, image=np.asarray(images[0]))
    print(f"{info.description}: {len(x)} images, methods {', '.join(methods)}; metrics {', '.join(metrics)}")
    print(result.markdown())
    if result.sanity is not None:
        print(result.sanity_words())
    print("wrote " + ", ".join(str(w) for w in written))
