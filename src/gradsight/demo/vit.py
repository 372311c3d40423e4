"""``ShapesViT``, the small demo vision transformer trained on the shapes benchmark.

The weights in ``weights/shapes_vit.pt`` were produced by ``scripts/train_demo_vit.py``
(``python scripts/train_demo_vit.py`` from the repository root retrains them). The model is
written here with plain ``torch.nn`` (no torchvision, no timm) and says what gradsight's
token-layer rules read, timm-style: ``patch_embed.patch_size`` / ``patch_embed.grid_size``
and ``num_prefix_tokens``, so ``gs.gradcam(vit, x)`` needs no ``tokens=`` and no layer.

Examples
--------
>>> import torch
>>> import gradsight as gs
>>> from gradsight.demo.vit import load_demo_vit
>>> from gradsight.demo.shapes import generate, preprocess
>>> vit = load_demo_vit()
>>> x = torch.from_numpy(preprocess(generate(4, seed=12345).images))
>>> gs.gradcam(vit, x).layer  # the input of the last block's attention, an 8 x 8 map
'blocks.3.norm1'
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .model import with_bundled_weights
from .shapes import CLASSES, IMAGE_SIZE

__all__ = ["ShapesViT", "VIT_WEIGHTS_PATH", "load_demo_vit"]

VIT_WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "shapes_vit.pt"
"""The packaged ``state_dict`` of the trained :class:`ShapesViT`."""


class PatchEmbed(nn.Module):
    """(N, 3, H, W) -> (N, (H/8)(W/8), dim) patch tokens from a small CNN feature map.

    A hybrid ViT's embedding (Dosovitskiy et al. 2021, section 3.1: the patches are taken
    from a CNN feature map): three 3x3 conv-BN-ReLU-max-pool stages (16, 32, 64 channels,
    as the first three of the demo CNN) and a 1x1 projection, so each token is one 8 x 8
    patch of the input. The convolutions let the ViT train in minutes on a few thousand
    images, where 8 x 8 linear patches would need far more data.
    """

    def __init__(self, dim: int, img_size: int = IMAGE_SIZE) -> None:
        super().__init__()
        self.patch_size = (8, 8)  # timm-style hints for the token-grid rule
        self.grid_size = (img_size // 8, img_size // 8)
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 16), (16, 32), (32, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(64, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.stem(x)).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention; the probabilities come out of an ``nn.Softmax`` module
    (``attn_drop``-free), so attention rollout can read them."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.softmax, self.proj = nn.Linear(dim, 3 * dim), nn.Softmax(dim=-1), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = self.softmax((q @ k.transpose(-2, -1)) * self.scale)  # (N, heads, T, T)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (GELU)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ShapesViT(nn.Module):
    """A small ViT for 64x64 RGB shapes images, 5 classes.

    Input: float32 ``(N, 3, 64, 64)`` normalised with :func:`gradsight.demo.shapes.preprocess`.
    Output: ``(N, 5)`` logits, in the order of :data:`gradsight.demo.shapes.CLASSES`.

    Structure (module names as in ``named_modules()``)::

        patch_embed   hybrid conv stem, stride 8 -> 64 patch tokens (8 x 8 grid), dim 64
        cls_token, pos_embed   one class token in front, learned positions: (N, 65, 64)
        blocks.0..3   pre-norm blocks: norm1 -> attn (4 heads, attn.softmax) -> norm2 -> mlp
        norm          final LayerNorm; head Linear(64, 5) on the class token

    ``layer="auto"`` is ``blocks.3.norm1`` (the input of the last block's attention, whose
    patch tokens still carry location); ``norm`` reaches the head through the class token
    only, so its patch tokens get no gradient.
    """

    num_prefix_tokens = 1  # timm-style hint: the class token

    def __init__(self, num_classes: int = len(CLASSES), dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 2, img_size: int = IMAGE_SIZE) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dim, img_size)
        n_patches = self.patch_embed.grid_size[0] * self.patch_embed.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n_patches, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the ``(N, num_classes)`` logits of a ``(N, 3, 64, 64)`` batch."""
        tokens = self.patch_embed(x)
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(h))[:, 0])


def load_demo_vit() -> ShapesViT:
    """Build :class:`ShapesViT` with the bundled trained weights, in eval mode, on CPU.

    Raises
    ------
    FileNotFoundError
        If the weights file is missing (run ``python scripts/train_demo_vit.py``).
    """
    return with_bundled_weights(ShapesViT(), VIT_WEIGHTS_PATH, "Demo ViT weights", "scripts/train_demo_vit.py")
