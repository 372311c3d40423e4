"""``gradsight embed``: a 2-D t-SNE/PCA picture of a layer's activations over a data set."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._common import DEFAULT_SIZE, load, png_out, read_image_folder

__all__ = ["add_parser", "run"]


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    em = subs.add_parser(
        "embed", parents=parents, help="2-D t-SNE/PCA picture of a layer's activations over a data set",
        description="Run the model over a data set, take one layer's activations (default: the penultimate "
                    "features, the input of the final classifier layer), embed them in 2-D and draw one point "
                    "per image coloured by class. Writes OUT and OUT with .csv (columns x, y, label, predicted).",
    )
    em.add_argument("--data", default="demo", metavar="demo|DIR",
                    help="'demo': generated shapes test images; or a folder with one sub-folder of images per "
                         "class (ImageFolder layout)")
    em.add_argument("--layer", metavar="NAME",
                    help="layer whose outputs to embed (default: the input of the final dense layer; 'auto': the "
                         "last spatial layer)")
    em.add_argument("--out", required=True, metavar="PLOT.png", help="the picture; the CSV goes beside it")
    em.add_argument("--method", choices=("tsne", "pca"), default="tsne", help="embedding (default: tsne)")
    em.add_argument("--perplexity", type=float, default=30.0,
                    help="t-SNE: about how many neighbours each point keeps close (default: 30)")
    em.add_argument("--n", type=int, default=300, metavar="N", help="number of demo images (default: 300)")
    em.add_argument("--seed", type=int, default=0, help="seed of the embedding (default: 0)")
    em.add_argument("--thumbnails", type=int, default=20, metavar="K", help="image thumbnails drawn (default: 20)")
    em.add_argument("--size", type=int, metavar="N", help="resize images to NxN (default: the model's, else 224)")
    em.add_argument("--preprocess", choices=("imagenet", "none", "demo"),
                    help="input normalisation (default: the model's own; 'imagenet' for your models)")
    em.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default: 64)")


def run(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image

    from .. import inspect
    from ..inputs import preprocess

    if args.n < 3:
        raise InputError(f"--n must be at least 3; got {args.n}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    out = png_out(args.out)
    model, info = load(args)
    model_classes = info.class_names
    size = args.size or info.input_size or DEFAULT_SIZE
    if args.data == "demo":
        from ..demo.shapes import CLASSES, generate

        data = generate(args.n, seed=1)  # the demo model's test seed: never trained on
        images, labels, names = data.images, data.labels, list(CLASSES)
        if images.shape[1] != size:
            images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
                               for im in images])
    else:
        images, labels, names = read_image_folder(Path(args.data), size)
    x = preprocess(images, args.preprocess or info.preprocessing, info.layout)
    acts = inspect.activations(model, x, layer=args.layer, labels=labels, batch_size=args.batch_size,
                               predict=True)
    coords = inspect.embed(acts, method=args.method, perplexity=args.perplexity, seed=args.seed)
    title = f"{args.method.upper() if args.method == 'pca' else 't-SNE'} of {acts.layer} ({acts.values.shape[1]} dims)"
    same_classes = model_classes is not None and list(model_classes) == list(names)
    inspect.plot_embedding(coords, labels, names, images=images if args.thumbnails > 0 else None, path=out,
                           predictions=acts.predictions if same_classes else None, thumbnails=args.thumbnails,
                           title=title)
    table = out.with_suffix(".csv")

    def pred_name(k: int) -> str:
        return model_classes[k] if model_classes is not None and k < len(model_classes) else str(k)

    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y", "label", "predicted"])
        assert acts.predictions is not None  # asked for with predict=True
        for (cx, cy), y, p in zip(coords, labels, acts.predictions):
            w.writerow([f"{cx:.5g}", f"{cy:.5g}", names[int(y)], pred_name(int(p))])
    print(f"{len(coords)} images, {title} -> {out}, {table}")
