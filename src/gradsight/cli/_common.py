"""What the commands share: the parser, ``--model``/``--debug``, loading the model,
reading images, output paths, and turning errors into one line and an exit status."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..errors import GradsightError, GradsightWarning, InputError

__all__ = [
    "PROG", "DEFAULT_SIZE", "MIN_PICTURE", "IMAGE_SUFFIXES", "Parser", "debug_parent", "model_parent", "load",
    "check_images", "read_image", "read_image_folder", "stems", "out_dir", "png_out", "one_line",
    "run_reporting_errors", "warn", "open_image", "show_warning",
]

PROG = "gradsight"
DEFAULT_SIZE = 224
MIN_PICTURE = 128  # pictures smaller than this are hard to look at; upscale for drawing
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors in gradsight's format."""

    def error(self, message: str) -> NoReturn:
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see '{PROG} {sub} --help')" if sub else f" (see '{PROG} --help')"
        self.exit(2, f"{PROG}: error: {message}{hint}\n")


# --------------------------------------------------------------------------- parent parsers


def debug_parent() -> argparse.ArgumentParser:
    """``--debug`` for a subcommand."""
    debug = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not reset a --debug given before it.
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback on errors")
    return debug


def model_parent() -> argparse.ArgumentParser:
    """``--model``, ``--weights``, ``--trust-pickle``, ``--framework``: read by :func:`load`."""
    from ..models import model_help

    model = argparse.ArgumentParser(add_help=False)
    g = model.add_argument_group("model")
    g.add_argument("--model", required=True, metavar="SPEC", help=model_help())
    g.add_argument("--weights", metavar="FILE",
                   help="state_dict for a 'package.module:factory' or bundled model (read with "
                        "torch.load(weights_only=True); Keras: model.load_weights)")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled model file (unpickling runs code from the file)")
    g.add_argument("--framework", choices=("torch", "keras"),
                   help="for the bundled models: the PyTorch model (default) or its Keras twin")
    return model


def load(args: argparse.Namespace, images: bool = True) -> tuple[Any, Any]:
    """``(model, ModelInfo)`` from the ``--model`` arguments; ``images``: the command feeds it images."""
    from ..models import load_model

    model, info = load_model(args.model, weights=args.weights, trust_pickle=args.trust_pickle,
                             framework=args.framework)
    if images and not info.takes_images:
        raise InputError(f"'{args.model.strip()}' takes 2-D points, not images; use it with '{PROG} units'.")
    return model, info


# --------------------------------------------------------------------------- images


def check_images(paths: Sequence[str]) -> list[Path]:
    """Fail on the first missing or unreadable image before any work (Pillow reads only headers here)."""
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"image file not found: {p}")
        if path.is_dir():
            raise InputError(f"{p} is a folder; pass image files (e.g. {p}/*.png)")
        open_image(path).close()
        out.append(path)
    return out


def open_image(path: Path) -> Any:
    """``PIL.Image.open(path)``; :class:`InputError` when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise InputError(f"cannot read {path}: not an image file Pillow can open") from None
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {one_line(exc)}") from None


def read_image(path: Path) -> Any:
    """The image at ``path`` as an RGB PIL image; :class:`InputError` when it cannot be read."""
    with open_image(path) as im:
        try:
            return im.convert("RGB")
        except OSError as exc:  # a truncated or corrupt file fails only when decoded
            raise InputError(f"cannot read image {path}: {one_line(exc)}") from None


def read_image_folder(folder: Path, size: int) -> tuple[Any, Any, list[str]]:
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


# --------------------------------------------------------------------------- outputs


def stems(paths: Sequence[Path]) -> list[str]:
    """Output names: the file stems, made unique (a/x.png, b/x.png -> x, x_2)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        out.append(p.stem if seen[p.stem] == 1 else f"{p.stem}_{seen[p.stem]}")
    return out


def out_dir(path: str) -> Path:
    """The ``--out DIR`` folder, created if missing."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def png_out(path: str) -> Path:
    """An ``--out FILE.png`` path; :class:`InputError` unless it names a .png file."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file; got {path}")
    return out


# --------------------------------------------------------------------------- errors


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return text or type(exc).__name__


def warn(message: str) -> None:
    """A one-line ``gradsight: warning: ...`` on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def show_warning(message: Any, category: type[Warning], filename: str, debug: bool) -> None:
    """A warning as one stderr line. gradsight's own: ``gradsight: warning: ...``. Another library's
    (Keras' notes on how a legacy model was configured, ...): only with ``--debug``, labelled with
    the library, so that it is never mistaken for gradsight's."""
    text = " ".join(str(message).split())
    if issubclass(category, GradsightWarning):
        warn(text)
    elif debug:
        parts = Path(filename).parts
        origin = parts[parts.index("site-packages") + 1] if "site-packages" in parts[:-1] else Path(filename).stem
        print(f"{PROG}: {category.__name__} from {origin}: {text}", file=sys.stderr)


def run_reporting_errors(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace, debug: bool) -> int:
    """Run a command; its errors become one line on stderr and an exit status (see :mod:`gradsight.cli`)."""

    def shown(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        show_warning(message, category, filename, debug)

    with warnings.catch_warnings():
        warnings.showwarning = shown
        try:
            status = run(args)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except (GradsightError, OSError) as exc:
            if debug:
                raise
            print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        except Exception as exc:
            if debug:
                raise
            print(f"{PROG}: error: {type(exc).__name__}: {one_line(exc)} (run with --debug for the traceback)",
                  file=sys.stderr)
            return 1
    return status if isinstance(status, int) else 0  # a command may return its own status (run: 3)
