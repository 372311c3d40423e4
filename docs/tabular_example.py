"""Make docs/tabular_bars.png: Integrated Gradients on a small tabular classifier, as bar charts.

A synthetic credit table (standardised features with names; the label depends on four of
them, the rest are noise) and a two-layer MLP trained on it here in a few seconds, with
no download. Run from the repository root::

    python docs/tabular_example.py          # writes docs/tabular_bars.png, prints the test accuracy
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

import gradsight as gs

FEATURES = ["income", "debt", "late_payments", "savings", "age", "accounts", "postcode_noise", "weekday_noise"]
WEIGHTS = np.array([1.6, -2.0, -1.4, 0.9, 0.0, 0.0, 0.0, 0.0], np.float32)  # what the label really depends on


def make_table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 8) standardised features, y (n,) 1 = repaid) from a logistic model of four of them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(FEATURES))).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-(x @ WEIGHTS)))
    return x, (rng.random(n) < p).astype(np.int64)


def train(x: np.ndarray, y: np.ndarray, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(len(FEATURES), 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def main() -> None:
    x, y = make_table(3000, seed=0)
    model = train(x[:2500], y[:2500])
    with torch.no_grad():
        acc = (model(torch.from_numpy(x[2500:])).argmax(1).numpy() == y[2500:]).mean()
    print(f"test accuracy {acc:.3f}")
    rows = x[2500:2502]
    exp = gs.integrated_gradients(model, rows, target=1, steps=32)  # the "repaid" logit
    charts = [
        gs.render.feature_bars(exp.attributions[i], FEATURES, top=6,
                               title=f"applicant {i}: repaid logit {exp.scores[i]:+.2f}")
        for i in range(len(rows))
    ]
    out = Path(__file__).parent / "tabular_bars.png"
    gs.render.save_png(gs.render.grid([charts], pad=8), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
