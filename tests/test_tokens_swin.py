"""Channels-last grids in PyTorch (torchvision's Swin gives (N, H, W, C) stage outputs): every CAM
method on such a layer, the layout found from the layer (its LayerNorm / Linear act on the last
axis) and given by ``tokens=gs.Tokens(layout="NHWC")``, against a hand-written permute to
(N, C, H, W) followed by each method's reference. torchvision is not a dependency, so the
Swin is written here: a patch stem that permutes to channels-last, window-attention blocks and
torchvision-style patch merging, all (N, H, W, C)."""

from __future__ import annotations

import numpy as np
import pytest

import gradsight as gs
from gradsight.methods import GROUPS
from helpers import assert_rel

torch = pytest.importorskip("torch")
nn = torch.nn

from test_methods_cam_family import REF_GRADIENT_CAMS, ref_eigencam, ref_scorecam  # noqa: E402

CAMS = GROUPS["cams"]


class Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class ShiftedWindowAttention(nn.Module):
    """Self-attention inside non-overlapping windows of a (N, H, W, C) grid (no shift, no bias table)."""

    def __init__(self, dim: int, window: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        s = min(self.window, h)
        win = x.reshape(n, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        q, k, v = self.qkv(win).reshape(len(win), s * s, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        out = self.proj((a @ v).transpose(1, 2).reshape(len(win), s * s, c))
        return out.reshape(n, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)


class SwinBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), ShiftedWindowAttention(dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """torchvision's: (N, H, W, C) -> (N, H/2, W/2, 2C), the four 2x2 neighbours concatenated."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction, self.norm = nn.Linear(4 * dim, 2 * dim, bias=False), nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class TinySwin(nn.Module):
    """32 x 32 input: features.0 (N, 8, 8, 12) -> features.1 blocks -> features.2 merge (N, 4, 4, 24)
    -> features.3 blocks; then norm, permute to NCHW, pool, head (as torchvision's SwinTransformer)."""

    def __init__(self, dim: int = 12, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, dim, 4, 4), Permute(0, 2, 3, 1), nn.LayerNorm(dim)),
            nn.Sequential(SwinBlock(dim)),
            PatchMerging(dim),
            nn.Sequential(SwinBlock(2 * dim)),
        )
        self.norm, self.permute = nn.LayerNorm(2 * dim), Permute(0, 3, 1, 2)
        self.avgpool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(2 * dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.avgpool(self.permute(self.norm(self.features(x)))).flatten(1))


def swin() -> TinySwin:
    torch.manual_seed(11)
    return TinySwin().eval()


X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(12))
TARGETS = [1, 3]


def hooked(model: nn.Module, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand-written: the layer's output as it is and the gradient of the targets' scores at it (float64)."""
    seen = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = model(X)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(out[torch.arange(len(X)), torch.tensor(TARGETS)].sum(), seen[0])
    return seen[0].detach().double(), g.double()


def nchw_layer_and_grad(model: nn.Module, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, H, W, C) output and its gradient, permuted by hand to (N, C, H, W)."""
    a, g = hooked(model, layer)
    return a.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)


def reference(model: nn.Module, method: str, a: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    if method == "eigencam":
        return ref_eigencam(a).numpy()
    if method == "scorecam":
        return ref_scorecam(model, X, TARGETS, a).numpy()
    return REF_GRADIENT_CAMS[method](a, g).numpy()


@pytest.mark.parametrize("layer", ["features.2", "features.3.0.norm1"])  # patch merging; auto layer of the last block
def test_every_cam_on_a_channels_last_layer_matches_permute_reference(layer):
    model = swin()
    a, g = nchw_layer_and_grad(model, layer)
    assert a.shape[1:] == (24, 4, 4)
    for method in CAMS:
        ref = reference(model, method, a, g)
        found = gs.explain(model, X, method, target=TARGETS, layer=layer)
        said = gs.explain(model, X, method, target=TARGETS, layer=layer, tokens=gs.Tokens(layout="NHWC"))
        assert found.attributions.shape == (2, 4, 4) and found.heatmaps.shape == (2, 32, 32), method
        assert ref.max() > 0, method
        assert_rel(found.attributions, ref, 1e-5)
        np.testing.assert_array_equal(said.attributions, found.attributions)


def test_auto_layer_is_the_last_blocks_attention_input_and_is_read_channels_last():
    model = swin()
    exp = gs.gradcam(model, X, target=TARGETS)
    assert exp.layer == "features.3.0.norm1"
    a, g = nchw_layer_and_grad(model, exp.layer)
    assert_rel(exp.attributions, REF_GRADIENT_CAMS["gradcam"](a, g).numpy(), 1e-5)


def test_channels_first_layers_stay_channels_first():
    """The stem's convolution (N, 12, 8, 8) and a ConvNeXt-style block (NCHW around a channels-last
    LayerNorm + MLP of its channel size) are not read as channels-last."""

    class ConvNeXtBlock(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.dw, self.norm = nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.LayerNorm(dim)
            self.pw1, self.pw2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.norm(self.dw(x).permute(0, 2, 3, 1))
            return x + self.pw2(torch.nn.functional.gelu(self.pw1(y))).permute(0, 3, 1, 2)

    torch.manual_seed(13)
    model = nn.Sequential(nn.Conv2d(3, 12, 4, 4), ConvNeXtBlock(12), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(12, 4)).eval()
    for layer in ("0", "1"):
        exp = gs.gradcam(model, X, target=TARGETS, layer=layer)
        assert exp.attributions.shape == (2, 8, 8)
        assert_rel(exp.attributions, REF_GRADIENT_CAMS["gradcam"](*hooked(model, layer)).numpy(), 1e-5)
