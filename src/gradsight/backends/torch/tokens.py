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

__all__ = ["channels_last_output", "transformer_layer"]


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


def _feature_sizes(m: torch.nn.Module) -> set[int]:
    sizes: set[int] = set()
    for sub in m.modules():
        if isinstance(sub, torch.nn.Linear):
            sizes.add(sub.out_features)
        elif isinstance(sub, torch.nn.LayerNorm) and len(sub.normalized_shape) == 1:
            sizes.add(sub.normalized_shape[0])
    return sizes


def channels_last_output(model: torch.nn.Module, layer: str | None, shape: tuple[int, ...]) -> bool:
    """Whether ``layer``'s 4-D output of ``shape`` is (N, H, W, C) rather than PyTorch's (N, C, H, W)."""
    cls = type(model)
    if cls.__module__.startswith("torchvision.") and "swin" in cls.__module__:
        return True
    if layer is None or len(shape) != 4 or shape[1] == shape[3]:
        return False
    try:
        module = model.get_submodule(layer)
    except AttributeError:  # not a module path (the input of a layer, say): PyTorch's own layout
        return False
    sizes = _feature_sizes(module)
    return shape[3] in sizes and shape[1] not in sizes
