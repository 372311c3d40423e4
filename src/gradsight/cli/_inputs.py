"""The CLI's model-input plan: image mode and rank, size, preprocessing, logits — and the notes it prints.

Used by ``gradsight explain`` and ``gradsight layers``; everything the user did not
choose is decided here from the model (:func:`gradsight.models.input_spec`,
:func:`gradsight.models.default_preprocessing`) and said in one ``gradsight: note:`` line each.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._locks import locked
from ..errors import GradsightWarning, InputError, TargetError
from ..inputs import PREPROCESSING, InputSpec, preprocess
from . import _images
from ._common import DEFAULT_SIZE, PROG

__all__ = ["InputPlan", "add_arguments", "decide_logits", "note", "plan_inputs", "read_images"]

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def note(text: str) -> None:
    """One line on stderr: something gradsight decided for the user."""
    print(f"{PROG}: note: {text}", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--logits`` / ``--probabilities`` for ``explain``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--logits", dest="logits", action="store_true", default=None,
                       help="explain the pre-softmax scores of a model that ends in a softmax / log-softmax "
                            "(the default for such models); an error for other models")
    group.add_argument("--probabilities", dest="logits", action="store_false",
                       help="explain the softmax output itself (probabilities saturate)")


@dataclass
class InputPlan:
    """How image files become the model's input batch."""

    spec: InputSpec
    size: tuple[int, int]
    preprocessing: str
    logits: bool = False
    notes: list[str] = field(default_factory=list)
    _printed: int = 0

    def flush_notes(self) -> None:
        """Print the notes not printed yet (the CLI calls this once work has succeeded, so that a
        failing run prints only its error)."""
        for text in self.notes[self._printed:]:
            note(text)
        self._printed = len(self.notes)

    def read(self, paths: Sequence[Path], draw: int, resize: str = "squash") -> tuple[np.ndarray, np.ndarray]:
        """``(x, shown)``: the model batch and the RGB uint8 pictures (N, draw, draw, 3) to draw on;
        ``resize`` (``--resize``): how a non-square image becomes a square input."""
        from PIL import Image

        h, w = self.size
        images, converted = read_images(paths, self.spec.channels, resize if h == w else "squash")
        if converted and converted not in self.notes:
            self.notes.append(converted)
        small = np.stack([np.asarray(im.resize((w, h), Image.Resampling.BILINEAR)) for im in images])
        shown = np.stack([
            np.asarray(im.convert("RGB").resize((draw, draw), Image.Resampling.BICUBIC)) for im in images
        ])
        return preprocess(small, self.preprocessing, self.spec), shown

    def as_images(self, explanations: dict[str, Any]) -> None:
        """Flat-input models (``NF``): give each explanation's (N, H*W*C) attributions their image
        shape and heat maps, so they can be drawn like any other."""
        if self.spec.layout != "NF":
            return
        from .. import render

        h, w = self.size
        for exp in explanations.values():
            a = exp.attributions
            if a.ndim != 2 or exp.heatmaps is not None:
                continue
            img = a.reshape(len(a), h, w, self.spec.channels)
            exp.attributions = img[..., 0] if self.spec.channels == 1 else img
            exp.layout = "channels_last"
            exp.heatmaps = render.normalize(np.abs(img).max(axis=-1))

    def blank(self) -> np.ndarray:
        """A zero batch of one sample in the model's input shape."""
        return np.zeros(self.spec.shape(1, self.size), np.float32)


def plan_inputs(model: Any, info: Any, size: int | None, preprocessing: str | None,
                logits: bool | None = None, for_explain: bool = True) -> InputPlan:
    """Decide how images are fed to ``model`` (``info``: the loader's ModelInfo); ``notes`` say what was decided.

    ``size``/``preprocessing``/``logits`` are the user's options (None: decide). Logits: a
    model that ends in a softmax / log-softmax is explained on its pre-softmax scores
    unless ``logits=False`` (``--probabilities``).
    """
    if size is not None and size < 8:
        raise InputError(f"--size must be at least 8 pixels; got {size}")
    from ..models import default_preprocessing, input_spec

    spec = input_spec(model, getattr(info, "layout", None))
    if spec.size is not None and size is not None and (size, size) != spec.size:
        raise InputError(f"--size {size}: the model takes {spec.size[0]}x{spec.size[1]} images only.")
    side = size or getattr(info, "input_size", None)
    hw = spec.size or ((side, side) if side else (DEFAULT_SIZE, DEFAULT_SIZE))
    plan = InputPlan(spec, hw, preprocessing or "unit")
    if spec.size is None:
        plan.size = _runnable_size(model, plan, fixed=side is not None)
    if spec.channels != 3 or spec.layout in ("NHW", "NF"):
        plan.notes.append(f"the model takes {spec.describe()} input {spec.shape(1, hw)[1:]} per image")
    if for_explain:
        if preprocessing is None:
            plan.preprocessing, guess = default_preprocessing(model, getattr(info, "preprocessing", None))
            if guess:
                plan.notes.append(guess)
        elif preprocessing not in PREPROCESSING:
            raise InputError(f"unknown --preprocess {preprocessing!r}; use one of {', '.join(PREPROCESSING)}.")
        plan.logits = _decide_logits(model, plan, logits)
    return plan


COMMON_SIZES = (224, 28, 32, 64, 96, 128, 160, 192, 256, 299, 384, 512)


def _runs(model: Any, plan: InputPlan) -> str | None:
    """None when the model runs on a blank batch of the plan's shape, else the error's text."""
    from ..backends import backend_for

    bk = backend_for(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with locked(model), bk.session(model, eval_mode=True):
                bk.forward(model, bk.prepare_input(model, plan.blank()))
    except TargetError:  # it ran; which of several outputs to explain is --output's business, checked later
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not this shape"
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return None


def _runnable_size(model: Any, plan: InputPlan, fixed: bool) -> tuple[int, int]:
    """The model's image size when it does not declare one: the given one, else the first common size it
    runs on (a flatten + Linear head fixes it, e.g. 28 for an MNIST CNN)."""
    error = _runs(model, plan)
    if error is None:
        return plan.size
    if fixed:
        raise InputError(
            f"the model does not run on input {plan.spec.shape(1, plan.size)} ({error}); pass the --size it was "
            "trained on."
        )
    first = plan.size
    for side in COMMON_SIZES:
        plan.size = (side, side)
        if (side, side) != first and _runs(model, plan) is None:
            plan.notes.append(f"the model runs on {side}x{side} images (it does not say; --size N to choose)")
            return plan.size
    plan.size = first
    raise InputError(
        f"the model does not run on input {plan.spec.shape(1, first)} ({error}), nor on other common sizes; "
        "pass the --size it was trained on."
    )


def _decide_logits(model: Any, plan: InputPlan, logits: bool | None) -> bool:
    return decide_logits(model, plan.blank(), logits, plan.notes)


def decide_logits(model: Any, sample: Any, logits: bool | None, notes: list[str]) -> bool:
    """The user's ``--logits`` / ``--probabilities``, else True for a model ending in a softmax (noted in ``notes``);
    ``sample`` is a batch in the model's layout for the one forward pass that tells."""
    if logits is not None:
        return logits
    from ..backends import backend_for

    bk = backend_for(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradsightWarning)  # the session's own softmax warning
        with locked(model), bk.session(model, eval_mode=True):
            found = bk.final_softmax(model, bk.prepare_input(model, sample))
    if found is None:
        return False
    notes.append(
        f"explaining the pre-softmax scores: the model's output comes from {found} (probabilities saturate); "
        "--probabilities explains the softmax output instead"
    )
    return True


def read_images(paths: Sequence[Path], channels: int, resize: str = "squash") -> tuple[list[Any], str | None]:
    """Open each file in the mode for ``channels`` (L, RGB, RGBA): decoded upright (EXIF), 16-bit scaled
    to 8 bits, made square by ``resize`` (:mod:`._images`).

    Returns
    -------
    (PIL images, note): the note says what was converted (e.g. "RGB -> gray"), or None.
    """
    mode = _MODES[channels]
    images, converted = [], set()
    for path in paths:
        with _images.decode(path) as im:  # a truncated or corrupt file: InputError naming it
            src = im.mode
            out = _images.to_mode(im, mode)
        if _family(src) != mode:
            converted.add(f"{_family(src)} -> {mode}")
        images.append(_images.square(out, resize))
    if not converted:
        return images, None
    names = {"L": "gray", "RGB": "RGB", "RGBA": "RGBA", "LA": "gray+alpha", "P": "palette", "CMYK": "CMYK"}
    pretty = ", ".join(sorted(" -> ".join(names.get(p, p) for p in c.split(" -> ")) for c in converted))
    return images, f"images converted {pretty} (the model takes {names[mode]} input)"


def _family(mode: str) -> str:
    if mode in ("1", "L", "I", "I;16", "F"):
        return "L"
    if mode == "RGBX":
        return "RGB"
    return mode
