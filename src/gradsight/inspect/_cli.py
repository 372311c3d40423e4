"""The inspect subcommands of ``gradsight``: ``embed``, ``filters``, ``units`` and ``weights``.

``register(subparsers)`` adds them to the main parser; each sets ``args.run``, which
:func:`gradsight.cli.main` calls (its error handling and exit codes apply).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["register"]

DEMO_MLP = "demo-mlp"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _model_args(parser: argparse.ArgumentParser, mlp: bool = False) -> None:
    g = parser.add_argument_group("model")
    extra = f"'{DEMO_MLP}' (the bundled 2-D MLP), " if mlp else ""
    g.add_argument("--model", required=True, metavar="SPEC",
                   help=f"{extra}'demo' (the bundled shapes CNN), 'package.module:factory', a pickled PyTorch "
                        "FILE.pt/.pth (needs --trust-pickle), or a Keras FILE.keras/.h5")
    g.add_argument("--weights", metavar="FILE", help="state_dict (PyTorch) or weights file (Keras) for the model")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled model file (unpickling runs code from the file)")
    g.add_argument("--framework", choices=("torch", "keras"),
                   help="for the bundled models: the PyTorch model (default) or its Keras twin")


def register(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add ``embed``, ``filters``, ``units`` and ``weights`` to ``subparsers``."""
    parents = list(parents)
    em = subparsers.add_parser(
        "embed", parents=parents, help="2-D t-SNE/PCA picture of a layer's activations over a data set",
        description="Run the model over a data set, take one layer's activations (default: the penultimate "
                    "features, the input of the final classifier layer), embed them in 2-D and draw one point "
                    "per image coloured by class. Writes OUT and OUT with .csv (columns x, y, label, predicted).",
    )
    _model_args(em)
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
    em.add_argument("--overwrite", action="store_true", help="replace OUT and its CSV if they exist (default: refuse)")
    em.add_argument("--quiet", action="store_true", help="no progress bar (shown only on a terminal anyway)")
    em.set_defaults(run=_embed)

    fi = subparsers.add_parser(
        "filters", parents=parents, help="picture of a conv layer's kernels",
        description="Draw a 2-D conv layer's kernels: the first layer in colour, deeper ones as rows of grey "
                    "tiles (row = kernel, column = input channel), each kernel normalised on its own.",
    )
    _model_args(fi)
    fi.add_argument("--layer", metavar="NAME", help="conv layer (default: the first)")
    fi.add_argument("--out", required=True, metavar="GRID.png", help="the picture")
    fi.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    fi.set_defaults(run=_filters)

    un = subparsers.add_parser(
        "units", parents=parents, help="hidden units of a 2-D-input network as lines over its decision regions",
        description=f"For a network whose first layer is a linear map from R^2 (e.g. '{DEMO_MLP}': Linear(2, 8) - "
                    "ReLU - Linear(8, 2) on two moons), draw each hidden unit's line w.x + b = 0 with an arrow "
                    "along w, over the decision regions.",
    )
    _model_args(un, mlp=True)
    un.add_argument("--out", required=True, metavar="UNITS.png", help="the picture")
    un.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    un.set_defaults(run=_units)

    we = subparsers.add_parser(
        "weights", parents=parents, help="table of weight statistics per layer",
        description="Print, for every weight tensor: shape, mean, std, L2 norm, fraction near zero.",
    )
    _model_args(we, mlp=True)
    we.add_argument("--atol", type=float, default=1e-3, help="'near zero' means |w| <= ATOL (default: 1e-3)")
    we.set_defaults(run=_weights)


def _load(args: argparse.Namespace) -> tuple[Any, tuple[str, ...] | None, Any]:
    """``(model, class names or None, ModelInfo or None)``; ``demo-mlp`` is handled here."""
    if args.model.strip() == DEMO_MLP:
        from ..demo import mlp

        if args.weights is not None or args.trust_pickle:
            raise InputError(f"--weights and --trust-pickle are for model files and factories, not '{DEMO_MLP}'.")
        model = mlp.load_keras_mlp_model() if args.framework == "keras" else mlp.load_mlp_model()
        return model, mlp.CLASSES, None
    from ..models import load_model

    model, info = load_model(args.model, weights=args.weights, trust_pickle=args.trust_pickle,
                             framework=args.framework)
    return model, info.class_names, info


def _read_folder(folder: Path, size: int) -> tuple[Any, Any, list[str]]:
    """ImageFolder: ``(uint8 images (N, size, size, 3), labels (N,), class names)``; classes sorted."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not folder.is_dir():
        raise InputError(f"--data {folder}: not a folder; pass 'demo' or a folder with one sub-folder per class.")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"--data {folder} has no sub-folders; put the images of each class in its own sub-folder.")
    images, labels = [], []
    for k, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as im:
                    images.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)))
            except (UnidentifiedImageError, OSError) as exc:
                raise InputError(f"cannot read image {path}: {exc}") from None
            labels.append(k)
    if not images:
        raise InputError(f"--data {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class sub-folders.")
    return np.stack(images), np.array(labels), classes


def _embed(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image

    from .. import inspect
    from ..models import preprocess

    if args.n < 3:
        raise InputError(f"--n must be at least 3; got {args.n}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file; got {args.out}")
    from ..cli_io import check_outputs, show_progress

    check_outputs(args, [out, out.with_suffix(".csv")])  # both files, before any work
    model, model_classes, info = _load(args)
    if info is None:
        raise InputError(f"'{DEMO_MLP}' takes 2-D points, not images; use it with 'gradsight units'.")
    size = args.size or info.input_size or 224
    if args.data == "demo":
        from ..demo.shapes import CLASSES, generate

        data = generate(args.n, seed=1)  # the demo model's test seed: never trained on
        images, labels, names = data.images, data.labels, list(CLASSES)
        if images.shape[1] != size:
            images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
                               for im in images])
    else:
        images, labels, names = _read_folder(Path(args.data), size)
    x = preprocess(images, args.preprocess or info.preprocessing, info.layout)
    acts = inspect.activations(model, x, layer=args.layer, labels=labels, batch_size=args.batch_size,
                               predict=True, progress=show_progress(args))  # a bar only on a terminal
    coords = inspect.embed(acts, method=args.method, perplexity=args.perplexity, seed=args.seed)
    title = f"{args.method.upper() if args.method == 'pca' else 't-SNE'} of {acts.layer} ({acts.values.shape[1]} dims)"
    same_classes = model_classes is not None and list(model_classes) == list(names)
    inspect.plot_embedding(coords, labels, names, images=images if args.thumbnails > 0 else None, path=out,
                           predictions=acts.predictions if same_classes else None, thumbnails=args.thumbnails,
                           title=title)
    table = out.with_suffix(".csv")

    def pred_name(k: int) -> str:
        return model_classes[k] if model_classes is not None and k < len(model_classes) else str(k)

    from ..outputs import atomic_path

    with atomic_path(table) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y", "label", "predicted"])
        for (cx, cy), y, p in zip(coords, labels, acts.predictions):
            w.writerow([f"{cx:.5g}", f"{cy:.5g}", names[int(y)], pred_name(int(p))])
    print(f"{len(coords)} images, {title} -> {out}, {table}")


def _filters(args: argparse.Namespace) -> None:
    from .. import inspect
    from ..cli_io import check_outputs

    check_outputs(args, [Path(args.out)])
    model, _, _ = _load(args)
    img = inspect.filters(model, layer=args.layer, path=args.out)
    print(f"{args.out} ({img.width}x{img.height})")


def _units(args: argparse.Namespace) -> None:
    from .. import inspect
    from ..cli_io import check_outputs

    check_outputs(args, [Path(args.out)])
    model, classes, _ = _load(args)
    data = labels = None
    if args.model.strip() == DEMO_MLP:
        from ..demo.mlp import make_moons

        data, labels = make_moons(200, seed=1)  # test points: never trained on
    img = inspect.hidden_units(model, data, labels, class_names=classes, path=args.out)
    print(f"{args.out} ({img.width}x{img.height})")


def _weights(args: argparse.Namespace) -> None:
    from .. import inspect

    if not args.atol >= 0:
        raise InputError(f"--atol must be >= 0; got {args.atol}")
    model, _, _ = _load(args)
    print(inspect.format_weight_stats(inspect.weight_stats(model, atol=args.atol)))
