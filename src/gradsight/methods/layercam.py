"""Layer-CAM (Jiang et al. 2021): element-wise positive gradients times the activation."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..targets import Target
from ._cam import gradient_cam
from ._common import MethodResult
from ._tokens import Tokens


def weigh(ops: Any, A: Any, G: Any, ch: int, spatial: tuple[int, ...]) -> Any:
    return ops.relu(ops.sum(ops.relu(G) * A, axis=ch))


def layercam(
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
    """ReLU(sum_k ReLU(g_k) * A_k), element-wise, g = dy/dA at ``layer``.

    Shapes, ``layer=[...]`` and ``guided=True`` as :func:`~gradsight.methods.gradcam_plus_plus`
    (Layer-CAM's own recipe for several layers is ``layer=[...]``).
    """
    return gradient_cam(bk, model, x, target, layer=layer, call=call, output=output, guided=guided,
                        name="layercam", weigh=weigh, tokens=tokens, layer_input=layer_input)
