"""The automatic CAM layer of a PyTorch vision transformer.

Rule: in the last block that has an attention child module (``nn.MultiheadAttention`` or
a module whose class name ends in ``Attention``: Hugging Face ViT/DeiT/BEiT/Swin, timm,
torchvision) and a LayerNorm child, the first LayerNorm, i.e. the input of the last
block's attention (``layernorm_before``, ``norm1``, ``ln_1``). Its tokens still carry
location: the final norm after the last block (the obvious choice) gets a gradient at the
class token only, so Grad-CAM there gives an all-zero map.
"""

from __future__ import annotations

import torch

from ..base import LayerRef

__all__ = ["transformer_layer"]


def _is_attention(m: torch.nn.Module) -> bool:
    return isinstance(m, torch.nn.MultiheadAttention) or type(m).__name__.endswith("Attention")


def _is_norm(m: torch.nn.Module) -> bool:
    return isinstance(m, torch.nn.LayerNorm) or type(m).__name__.endswith(("LayerNorm", "RMSNorm"))


def transformer_layer(model: torch.nn.Module) -> LayerRef | None:
    """The LayerNorm feeding the last transformer block's attention, or None for other models."""
    chosen: LayerRef | None = None
    for name, block in model.named_modules():
        if _is_attention(block):
            continue
        children = list(block.named_children())
        if not any(_is_attention(c) for _, c in children):
            continue
        norm = next(((n, c) for n, c in children if _is_norm(c)), None)
        if norm is not None:
            chosen = LayerRef(f"{name}.{norm[0]}" if name else norm[0], norm[1])
    return chosen
