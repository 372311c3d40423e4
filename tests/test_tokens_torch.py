"""Vision transformers on PyTorch: token layers for CAM methods, checked against a hand-written
reshape + Grad-CAM (Hugging Face ViT / DeiT / Swin from tiny configs, random weights, and a
torchvision-free ViT written here)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradsight as gs
from gradsight.errors import TokenGridError, ZeroGradientWarning

torch = pytest.importorskip("torch")
nn = torch.nn

transformers = pytest.importorskip("transformers")


def hf_vit() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=5, attn_implementation="eager",
    )
    return transformers.ViTForImageClassification(cfg).eval()


def hf_deit() -> nn.Module:
    torch.manual_seed(1)
    cfg = transformers.DeiTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=5,
    )
    return transformers.DeiTForImageClassificationWithTeacher(cfg).eval()


def hf_swin() -> nn.Module:
    torch.manual_seed(2)
    cfg = transformers.SwinConfig(
        image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, num_labels=5,
    )
    return transformers.SwinForImageClassification(cfg).eval()


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-1, -2) / (c // self.heads) ** 0.5).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, 2)
        self.norm2, self.mlp = nn.LayerNorm(dim), nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A ViT with a class token and no hints (no patch_size attribute): the square rule finds the grid."""

    def __init__(self, dim: int = 24, patch: int = 4, prefix: int = 1) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.tokens = nn.Parameter(torch.randn(1, prefix, dim) * 0.1)
        self.pos = nn.Parameter(torch.randn(1, prefix + 36, dim) * 0.1)
        self.blocks = nn.Sequential(Block(dim), Block(dim))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.tokens.expand(len(x), -1, -1), p], 1) + self.pos
        return self.head(self.norm(self.blocks(h))[:, 0])


def reference_cam(model: nn.Module, x: torch.Tensor, layer: nn.Module, prefix: int, grid: tuple[int, int],
                  cls: np.ndarray, logits: object = None) -> np.ndarray:
    """Hand-written: hook the layer output, drop the prefix, reshape, Grad-CAM."""
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = model(x)
    finally:
        handle.remove()
    out = out.logits if hasattr(out, "logits") else out
    a = seen[-1]
    score = out[torch.arange(len(x)), torch.as_tensor(cls)].sum()
    (g,) = torch.autograd.grad(score, a)
    n, _, c = a.shape
    a = a[:, prefix:].reshape(n, *grid, c)
    g = g[:, prefix:].reshape(n, *grid, c)
    return torch.relu((g.mean((1, 2), keepdim=True) * a).sum(-1)).detach().numpy()


X = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
X24 = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(6))


@pytest.mark.parametrize(
    "make, layer, prefix, grid",
    [
        (hf_vit, "vit.layers.1.layernorm_before", 1, (4, 4)),
        (hf_deit, "deit.layers.1.layernorm_before", 2, (4, 4)),  # class + distillation token
        (hf_swin, "swin.encoder.layers.1.blocks.0.layernorm_before", 0, (8, 8)),  # merged stage, no prefix
    ],
)
def test_hf_transformers_auto_layer_matches_reference(make, layer, prefix, grid):
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZeroGradientWarning)
        exp = gs.gradcam(model, X)
    assert exp.layer == layer
    ref = reference_cam(model, X, dict(model.named_modules())[layer], prefix, grid, exp.targets)
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)
    assert exp.heatmaps.shape == (3, 32, 32) and ref.max() > 0


def test_hf_vit_top_k_matches_reference():
    model = hf_vit()
    layer = "vit.layers.0.layernorm_after"
    exp = gs.explain(model, X, "gradcam", target=gs.targets.TopK(2), layer=layer)
    for j in range(2):
        ref = reference_cam(model, X, dict(model.named_modules())[layer], 1, (4, 4), exp.targets[:, j])
        np.testing.assert_allclose(exp.attributions[:, j], ref, rtol=1e-4, atol=1e-6)
    with pytest.raises(gs.RuleNotAppliedError):  # GELU only: guided Grad-CAM says so, as on any such model
        gs.guided_gradcam(model, X, target=2, layer=layer)


def test_hand_written_vit_square_rule_and_override():
    torch.manual_seed(3)
    model = TinyViT().eval()
    exp = gs.gradcam(model, X24)
    assert exp.layer == "blocks.1.norm1"
    ref = reference_cam(model, X24, model.blocks[1].norm1, 1, (6, 6), exp.targets)
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)
    same = gs.gradcam(model, X24, tokens=gs.Tokens(prefix=1, grid=(6, 6)))
    np.testing.assert_allclose(same.attributions, exp.attributions, rtol=1e-6)
    # Three register tokens and a class token: the square rule alone would take 36 + 4 = 40 -> prefix 4
    four = TinyViT(prefix=4).eval()
    ref4 = reference_cam(four, X24, four.blocks[1].norm1, 4, (6, 6), np.zeros(2, int))
    np.testing.assert_allclose(gs.gradcam(four, X24, target=0).attributions, ref4, rtol=1e-4, atol=1e-6)


def test_gradient_cams_on_token_layers_match_reference():
    """Layer-CAM and HiResCAM (issue 15) read token layers through the same grid as Grad-CAM."""
    torch.manual_seed(3)
    model = TinyViT().eval()
    layer = model.blocks[1].norm1
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = model(X24)
    finally:
        handle.remove()
    cls = out.argmax(1)
    (g,) = torch.autograd.grad(out[torch.arange(len(X24)), cls].sum(), seen[-1])
    a, g = seen[-1][:, 1:].reshape(2, 6, 6, -1), g[:, 1:].reshape(2, 6, 6, -1)
    refs = {"layercam": torch.relu((torch.relu(g) * a).sum(-1)), "hirescam": torch.relu((g * a).sum(-1))}
    for name, ref in refs.items():
        exp = gs.explain(model, X24, name, layer="blocks.1.norm1")
        assert exp.attributions.shape == (2, 6, 6) and exp.heatmaps.shape == (2, 24, 24)
        np.testing.assert_allclose(exp.attributions, ref.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_token_mismatch_is_a_typed_error_with_the_numbers():
    model = TinyViT().eval()
    with pytest.raises(TokenGridError, match=r"37 tokens.*1 \+ 5 x 5 = 26"):
        gs.gradcam(model, X24, tokens=gs.Tokens(prefix=1, grid=(5, 5)))
    with pytest.raises(TokenGridError, match="36 patch tokens|are not a square"):
        gs.gradcam(model, X24, tokens=gs.Tokens(prefix=2))
    with pytest.raises(TokenGridError, match="layout"):
        gs.Tokens(layout="NCT")


def test_final_norm_gets_the_prefix_only_warning():
    model = hf_vit()
    with pytest.warns(ZeroGradientWarning, match="zero at every patch token.*final norm"):
        exp = gs.gradcam(model, X, layer="vit.layernorm")
    assert not exp.attributions.any()


def test_channels_last_grid_override():
    """(N, H, W, C) grids, as torchvision's Swin stages give them, with Tokens(layout="NHWC")."""

    class Nhwc(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, 6, 3, 2, 1), nn.Linear(6, 4)
            self.norm = nn.LayerNorm(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.norm(self.conv(x).permute(0, 2, 3, 1)).mean((1, 2)))

    torch.manual_seed(4)
    model = Nhwc().eval()
    exp = gs.gradcam(model, X24, target=1, layer="norm", tokens=gs.Tokens(layout="NHWC"))
    seen = []
    h = model.norm.register_forward_hook(lambda m, i, o: seen.append(o))
    (g,) = torch.autograd.grad(model(X24)[:, 1].sum(), [seen[0]]) if True else None
    h.remove()
    ref = torch.relu((g.mean((1, 2), keepdim=True) * seen[0]).sum(-1)).detach().numpy()
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)


def test_layer_input_weighs_the_input_of_the_layer():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 6, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    exp = gs.gradcam(model, X24, target=2, layer="2", layer_input=True)
    a = model[:2](X24).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model[2:](a)[:, 2].sum(), [a])
    ref = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1)).detach().numpy()
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)
    assert [n for n, _ in model.named_modules()] and not model[2]._forward_pre_hooks  # hook removed
    with pytest.raises(gs.ModelError, match="layer_input"):
        gs.gradcam(model, X24, layer_input=True)


def test_timm_style_hints_prefix_and_rectangular_grid():
    """timm-style attributes: patch_embed.patch_size on a 24 x 32 input gives a 6 x 8 grid (not a square)."""

    class PatchEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch_size, self.proj = (4, 4), nn.Conv2d(3, 24, 4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x).flatten(2).transpose(1, 2)

    class Timmish(TinyViT):
        def __init__(self) -> None:
            super().__init__(prefix=1)
            self.patch_embed, self.num_prefix_tokens = PatchEmbed(), 1
            self.pos = nn.Parameter(torch.randn(1, 1 + 48, 24) * 0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.cat([self.tokens.expand(len(x), -1, -1), self.patch_embed(x)], 1) + self.pos
            return self.head(self.norm(self.blocks(h))[:, 0])

    torch.manual_seed(8)
    model = Timmish().eval()
    x = torch.randn(2, 3, 24, 32, generator=torch.Generator().manual_seed(9))
    exp = gs.gradcam(model, x, target=3)
    ref = reference_cam(model, x, model.blocks[1].norm1, 1, (6, 8), np.full(2, 3))
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-4, atol=1e-6)
    assert exp.heatmaps.shape == (2, 24, 32)


def test_token_grid_rules_without_a_framework():
    from types import SimpleNamespace

    from gradsight.methods._tokens import token_grid

    assert token_grid(SimpleNamespace(), None, 25) == (0, (5, 5))  # square rule: smallest prefix
    assert token_grid(SimpleNamespace(num_prefix_tokens=9), None, 25) == (9, (4, 4))  # timm says 9
    cfg = SimpleNamespace(config=SimpleNamespace(patch_size=16))
    assert token_grid(cfg, (224, 224), 198) == (2, (14, 14))  # DeiT: class + distillation
    assert token_grid(cfg, (224, 224), 49) == (0, (7, 7))  # fewer tokens than patches: a merged stage
    assert token_grid(SimpleNamespace(), None, 50, gs.Tokens(grid=(7, 7))) == (1, (7, 7))


def test_inspect_activations_layer_input():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 6, 3, padding=1)).eval()
    acts = gs.inspect.activations(model, X24, layer="2", layer_input=True, progress=False)
    np.testing.assert_allclose(acts.values, model[:2](X24).mean((2, 3)).detach().numpy(), rtol=1e-5, atol=1e-7)
    assert acts.layer == "input of 2"


def test_one_d_signal_layers_are_not_read_as_tokens():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv1d(2, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(2, 2, 30)
    exp = gs.gradcam(model.eval(), x, layer="0")  # (N, C, l) feature maps, not a square grid of tokens
    xr = x.clone().requires_grad_(True)
    a = model[0](xr)
    score = model[1:](a).gather(1, torch.as_tensor(exp.targets)[:, None]).sum()
    (g,) = torch.autograd.grad(score, a)
    ref = torch.relu((g.mean(2, keepdim=True) * a).sum(1)).detach().numpy()
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam",
                                    "scorecam"])
def test_layer_input_on_every_cam_method(method):
    """The input of conv "2" is the output of ReLU "1": every CAM method gives the same map either way,
    for one layer and for a list of layers."""
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    via_input = gs.explain(model, X24, method, target=2, layer="2", layer_input=True)
    via_output = gs.explain(model, X24, method, target=2, layer="1")
    np.testing.assert_allclose(via_input.attributions, via_output.attributions, rtol=1e-5, atol=1e-7)
    both = gs.explain(model, X24, method, target=2, layer=["2", "4"], layer_input=True)
    ref = gs.explain(model, X24, method, target=2, layer=["1", "3"])
    np.testing.assert_allclose(both.attributions, ref.attributions, rtol=1e-5, atol=1e-6)
    assert not model[2]._forward_pre_hooks and not model[4]._forward_pre_hooks
