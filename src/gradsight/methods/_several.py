"""Several inputs (``x`` a tuple, list or dict): checked, packed into one tensor, split back.

:func:`before` checks every input before the session (float dtype, one batch size for
all, the usual per-input checks, a method that takes several inputs); :func:`prepare`
makes each a tensor, packs them with :class:`~gradsight.backends.several.Packing` and
returns the session's backend bound to that packing; every method then runs unchanged
on the packed (N, D) tensor. :func:`split` turns the input-space attributions of the
result back into one array per input, in ``x``'s structure, with a heat map for each
image-shaped input (None for the others). CAM maps live at the layer and stay as they are
(their heat maps are resized to the first image-shaped input).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _checks
from ..backends.base import Backend
from ..backends.ops import Tensor
from ..backends.several import Packing, structure
from ..errors import InputError
from ._common import MethodResult, input_heatmaps

__all__ = ["before", "prepare", "split"]

_IMAGE_ONLY = {
    "scorecam": "masks the image input with each channel of the layer",
    "guided_gradcam": "multiplies the input gradient by the map resized to the image",
}


def _integer(v: Any) -> str | None:
    """The dtype's name when ``v`` holds integers or booleans (torch, tf, numpy), else None."""
    dtype = getattr(v, "dtype", None)
    if dtype is None:
        return None
    name = str(getattr(dtype, "name", dtype)).replace("torch.", "")
    return name if ("int" in name or "bool" in name) else None


def before(
    model: Any, x: Any, method: str | None = None, options: dict[str, Any] | None = None, allow_empty: bool = False
) -> bool:
    """:func:`gradsight._checks.before` on ``x``, or on each of several inputs with the checks of
    their own (one batch size, float dtypes, a method that takes them); True for several inputs."""
    parts = structure(x)
    if parts is None:
        _checks.before(model, x, allow_empty=allow_empty)
        return False
    kind, names, values = parts
    if not values:
        raise InputError(f"x is an empty {kind}; pass one input (an array) or several (a tuple of arrays).")
    if method in _IMAGE_ONLY or (method is not None and (options or {}).get("guided")):
        what = _IMAGE_ONLY.get(method or "", "multiplies the input gradient by the map resized to the image")
        raise InputError(
            f"{method}{' with guided=True' if method not in _IMAGE_ONLY else ''} {what}, so it takes one image "
            f"input; x is a {kind} of {len(values)}. Pass the other inputs through forward_args= / forward_kwargs= "
            "(not explained), or use gradcam and guided_backprop on the tuple separately."
        )
    for name, v in zip(names, values):
        dtype = _integer(v)
        if dtype is not None:
            raise InputError(
                f"{name} has dtype {dtype}: integer inputs (token ids, indices, labels) have no gradient, so they "
                "cannot be explained. Pass them to the model unexplained through forward_args=(...) (after the "
                "explained inputs) or forward_kwargs={...}, and put only float inputs in x; pixels in 0..255 "
                "become floats as the model expects (e.g. x.float() / 255)."
            )
        _checks.before(model, v, allow_empty=allow_empty)
    sizes = [int(np.shape(v)[0]) if len(np.shape(v)) else None for v in values]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{n} has {s}" for n, s in zip(names, sizes))
        raise InputError(
            f"the inputs' batch sizes differ: {listed}. Every input needs the same number of samples N, "
            "sample i of each belonging together."
        )
    return True


def prepare(
    bk: Backend, model: Any, x: Any, method: str | None = None, options: dict[str, Any] | None = None
) -> tuple[Backend, Tensor]:
    """``(backend bound to the packing, packed (N, D) input)`` for several inputs that passed :func:`before`."""
    parts = structure(x)
    assert parts is not None, "prepare() is for several inputs"
    kind, names, values = parts
    tensors = bk.prepare_inputs(model, values, names)
    for t in tensors:
        _checks.prepared(bk, model, t, method, options, channels=False)
    shapes = tuple(tuple(int(s) for s in bk.ops.shape(t)[1:]) for t in tensors)
    packing = Packing(kind, names, shapes, bk.spreads_inputs, bk.ops)
    return bk.with_inputs(packing), packing.pack(tensors)


def split(bk: Backend, model: Any, result: MethodResult) -> MethodResult:
    """Input-space attributions (N, [k,] D) of a packed input -> one per input, with heat maps."""
    packing = bk.settings.inputs
    attr = result.attributions
    if packing is None or attr.ndim != result.scores.ndim + 1 or attr.shape[-1] != packing.width:
        return result  # one input, or a map at a layer (CAM methods)
    multi = result.scores.ndim == 2
    parts = packing.split(attr)
    attributions: Any = packing.rebuild(parts)
    heatmaps: Any = packing.rebuild([input_heatmaps(bk, model, p, k_axis=multi) for p in parts])
    result.attributions, result.heatmaps = attributions, heatmaps
    return result

