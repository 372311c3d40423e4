"""XGrad-CAM (Fu et al. 2020): gradients weighted by the normalised activation."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..targets import Target
from ._cam import gradient_cam
from ._common import MethodResult
from ._tokens import Tokens

EPS = 1e-7


def weigh(ops: Any, A: Any, G: Any, ch: int, spatial: tuple[int, ...]) -> Any:
    w = ops.sum(A * G, spatial, keepdims=True) / (ops.sum(A, spatial, keepdims=True) + EPS)
    return ops.relu(ops.sum(w * A, axis=ch))


def xgradcam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: Any = None,
) -> MethodResult:
    """ReLU(sum_k w_k A_k), w_k = sum_ij (A_ij / (sum_ab A_ab + 1e-7)) g_ij, g = dy/dA at ``layer``.

    Shapes, ``layer=[...]`` and ``guided=True`` as :func:`~gradsight.methods.gradcam_plus_plus`.
    """
    return gradient_cam(bk, model, x, target, layer=layer, call=call, output=output, guided=guided,
                        name="xgradcam", weigh=weigh, tokens=tokens, layer_input=layer_input)
