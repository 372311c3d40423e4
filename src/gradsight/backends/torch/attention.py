"""Attention probabilities of a PyTorch model, for attention rollout.

Two sources, tried in order:

- a Hugging Face model (it has a ``config``): ``model(x, output_attentions=True)`` and its
  ``attentions``; a model that computes attention with a fused kernel ("sdpa", flash)
  never materialises them, and gets an error saying how to switch to "eager";
- otherwise the outputs of ``nn.Softmax`` modules that are (N, heads, T, T) (or (N, T, T)),
  and the weights of ``nn.MultiheadAttention`` modules called with ``need_weights=True``.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ModelError
from ..base import Settings
from ..outputs import check_tensors, select_output
from .capture import hooked

__all__ = ["attentions"]

FUSED = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def _square(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() in (3, 4) and t.shape[-1] == t.shape[-2] > 1


def _hugging_face(model: torch.nn.Module, x: torch.Tensor, output: Any, settings: Settings) -> tuple[Any, list[Any]]:
    impl = getattr(model.config, "_attn_implementation", None)
    if impl in FUSED:
        raise ModelError(
            f"this {type(model).__name__} computes attention with the fused {impl!r} kernel, which never "
            "materialises the attention probabilities that attention rollout needs. Load it with "
            "attn_implementation=\"eager\" (from_pretrained(..., attn_implementation=\"eager\"), or "
            "Config(..., attn_implementation=\"eager\")), or call model.set_attn_implementation(\"eager\")."
        )
    raw = settings.call(model, x, output_attentions=True)
    found = list(getattr(raw, "attentions", None) or [])
    if output is None and "logits" in raw:  # the attentions were asked for here, not by the user
        output = "logits"
    return check_tensors(select_output(raw, output), lambda t: isinstance(t, torch.Tensor)), found


def attentions(model: torch.nn.Module, x: torch.Tensor, output: Any, settings: Settings) -> tuple[Any, list[Any]]:
    """``(selected output, [attention (N, heads, T, T) per layer, in call order])``, forward only."""
    with torch.no_grad():
        if getattr(model, "config", None) is not None:
            out, found = _hugging_face(model, x, output, settings)
        else:
            found = []

            def hook_for(name: str) -> Any:
                def hook(mod: torch.nn.Module, inputs: Any, result: Any) -> None:
                    w = result[1] if isinstance(result, tuple) and len(result) > 1 else result
                    if _square(w):
                        found.append(w if w.dim() == 4 else w[:, None])

                return hook

            kinds = (torch.nn.Softmax, torch.nn.MultiheadAttention)
            with hooked(((n, m) for n, m in model.named_modules() if isinstance(m, kinds)), hook_for):
                out = check_tensors(select_output(settings.call(model, x), output), lambda t: isinstance(t, torch.Tensor))
    if not found:
        raise ModelError(
            f"no attention probabilities were seen in this {type(model).__name__}'s forward pass. Attention "
            "rollout reads them from a Hugging Face model's output_attentions (attn_implementation=\"eager\"), "
            "from nn.Softmax modules giving (N, heads, T, T), or from nn.MultiheadAttention called with "
            "need_weights=True. Compute the attention softmax with an nn.Softmax module to expose it."
        )
    return out, found
