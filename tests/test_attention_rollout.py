"""Attention rollout (Abnar & Zuidema 2020) on PyTorch models, against a rollout written here
with plain loops over samples and layers."""

from __future__ import annotations

import numpy as np
import pytest

import gradsight as gs

torch = pytest.importorskip("torch")
nn = torch.nn

transformers = pytest.importorskip("transformers")

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def reference_rollout(attns: list[np.ndarray], fusion: str, discard: float, prefix: int) -> np.ndarray:
    out = []
    for i in range(attns[0].shape[0]):
        t = attns[0].shape[-1]
        r = np.eye(t)
        for a in attns:
            f = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](a[i], axis=0).astype(np.float64)
            if discard:
                flat = f.flatten()
                order = np.argsort(flat, kind="stable")[: int(t * t * discard)]
                for j in order:
                    if j % t != 0:
                        flat[j] = 0
                f = flat.reshape(t, t)
            step = (f + np.eye(t)) / 2
            for row in range(t):
                step[row] /= step[row].sum()
            r = step @ r
        out.append(r[0, prefix:])
    return np.array(out)


def vit(attn: str = "eager") -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=3,
                                 num_attention_heads=2, intermediate_size=32, num_labels=3, attn_implementation=attn)
    return transformers.ViTForImageClassification(cfg).eval()


@pytest.mark.parametrize("fusion, discard", [("mean", 0.0), ("max", 0.3), ("min", 0.0)])
def test_hf_vit_rollout_matches_reference(fusion, discard):
    model = vit()
    exp = gs.attention_rollout(model, X, head_fusion=fusion, discard_ratio=discard)
    with torch.no_grad():
        out = model(X, output_attentions=True)
    ref = reference_rollout([a.numpy() for a in out.attentions], fusion, discard, 1).reshape(2, 4, 4)
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-5, atol=1e-7)
    assert exp.heatmaps.shape == (2, 16, 16)
    np.testing.assert_array_equal(exp.targets, out.logits.argmax(1).numpy())


def test_fused_attention_says_how_to_turn_it_off():
    with pytest.raises(gs.ModelError, match='attn_implementation="eager"'):
        gs.attention_rollout(vit("sdpa"), X)
    with pytest.raises(gs.UnknownOptionError, match="head_fusion"):
        gs.attention_rollout(vit(), X, head_fusion="median")


class SoftmaxViT(nn.Module):
    """Attention probabilities from an nn.Softmax module; class and distillation-like tokens."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.tokens = nn.Parameter(torch.randn(1, 2, dim))
        self.qk = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(2))
        self.softmax = nn.Softmax(-1)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.tokens.expand(len(x), -1, -1), self.patch(x).flatten(2).transpose(1, 2)], 1)
        for qk in self.qk:
            q, k = qk(h).chunk(2, -1)
            a = self.softmax(q @ k.transpose(1, 2))[:, None]  # (N, 1 head, T, T)
            h = h + (a[:, 0] @ h)
        return self.head(h[:, 0])


def test_softmax_module_rollout_with_two_prefix_tokens():
    torch.manual_seed(1)
    model = SoftmaxViT().eval()
    seen = []
    handle = model.softmax.register_forward_hook(lambda m, i, o: seen.append(o[:, None].detach().numpy()))
    with torch.no_grad():
        model(X)
    handle.remove()
    exp = gs.attention_rollout(model, X, target=1, tokens=gs.Tokens(prefix=2))
    np.testing.assert_allclose(exp.attributions, reference_rollout(seen, "mean", 0.0, 2).reshape(2, 4, 4),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(exp.targets, [1, 1])


def test_registry_and_function_signature():
    import inspect

    from gradsight.methods import TRANSFORMER_METHODS

    spec = TRANSFORMER_METHODS["attention_rollout"]
    assert "attention_rollout" not in gs.METHODS  # "all" (CLI, viewer) runs METHODS on any model, CNNs too
    params = inspect.signature(gs.attention_rollout).parameters
    keywords = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keywords == [o for o in spec.options if o != "output"] + ["output", "eval_mode", "logits"]
    model = vit()
    np.testing.assert_allclose(gs.explain(model, X, "attention_rollout").attributions,
                               gs.attention_rollout(model, X).attributions)
