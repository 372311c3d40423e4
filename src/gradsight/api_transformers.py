"""Public functions of the transformer-only methods (``gs.attention_rollout``), beside
:mod:`gradsight.api` (kept under the module size limit); same conventions as there."""

from __future__ import annotations

from typing import Any

from .api import _doc, explain
from .explanation import Explanation
from .methods._tokens import Tokens

__all__ = ["attention_rollout"]


@_doc
def attention_rollout(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    tokens: Tokens | None = None,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Attention rollout (Abnar & Zuidema 2020): the class token's attention, rolled out over the layers.

    ``attributions`` (N, h, w) on the patch grid; ``heatmaps`` (N, H, W). Class-agnostic
    (``target`` only fills ``targets`` and ``scores``). The model must expose attention
    probabilities: Hugging Face models with ``attn_implementation="eager"`` (the fused
    "sdpa" default raises an error saying so), ``nn.Softmax`` modules giving
    (N, heads, T, T), Keras ``MultiHeadAttention`` layers.

    Parameters
    ----------
    {common}
    head_fusion : {"mean", "max", "min"}
        How each layer's heads are fused.
    discard_ratio : float, default 0.0
        Fraction of the weakest fused attention entries dropped per layer (not the class column).
    tokens : gradsight.Tokens, optional
        Prefix tokens and patch grid, found from the model when not given.
    {session}
    """
    return explain(
        model, x, "attention_rollout", target, output=output, eval_mode=eval_mode, logits=logits,
        head_fusion=head_fusion, discard_ratio=discard_ratio, tokens=tokens, **options,
    )
