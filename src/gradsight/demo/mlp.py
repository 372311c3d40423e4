"""``demo-mlp``: the course's ``Linear(2, 8) - ReLU - Linear(8, 2)`` trained on two moons.

The weights in ``weights/mlp_moons.npz`` (numpy, in PyTorch's ``(out, in)`` layout, so
neither framework is needed to read them) were produced by ``scripts/train_mlp.py``.
:func:`load_mlp_model` builds the PyTorch network, :func:`load_keras_mlp_model` its
Keras twin from the same numbers; both compute the same logits.

Examples
--------
>>> from gradsight.demo.mlp import load_mlp_model, make_moons
>>> x, y = make_moons(200, seed=1)        # float32 (200, 2), int64 (200,)
>>> model = load_mlp_model()              # torch: fc1 -> relu -> fc2
>>> import gradsight as gs
>>> gs.inspect.hidden_units(model, x, y).save("units.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CLASSES", "HIDDEN", "WEIGHTS_PATH", "make_moons", "load_mlp_weights", "load_mlp_model",
           "load_keras_mlp_model"]

CLASSES: tuple[str, ...] = ("upper moon", "lower moon")
"""Class names; label ``k`` means ``CLASSES[k]``."""

HIDDEN: int = 8
"""Hidden units of the demo MLP."""

WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "mlp_moons.npz"
"""``fc1.weight`` (8, 2), ``fc1.bias`` (8,), ``fc2.weight`` (2, 8), ``fc2.bias`` (2,), float32."""

# Centre of sklearn's two moons, so that the data sit around the origin.
_CENTRE = np.array([0.5, 0.25], dtype=np.float64)


def make_moons(n: int = 200, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles with Gaussian noise, centred on the origin.

    The same curves as ``sklearn.datasets.make_moons`` (upper moon: label 0, lower:
    label 1), shifted by ``(-0.5, -0.25)``, in shuffled order; numpy only.

    Parameters
    ----------
    n : int
        Number of points (half of them per moon, the odd one in the upper moon).
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate.
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    (x, labels): float32 ``(n, 2)`` and int64 ``(n,)``.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2; got {n}")
    rng = np.random.default_rng(seed)
    n_up = (n + 1) // 2
    t_up = rng.uniform(0.0, np.pi, n_up)
    t_down = rng.uniform(0.0, np.pi, n - n_up)
    up = np.stack([np.cos(t_up), np.sin(t_up)], axis=1)
    down = np.stack([1.0 - np.cos(t_down), 0.5 - np.sin(t_down)], axis=1)
    x = np.concatenate([up, down]) - _CENTRE + rng.normal(0.0, noise, (n, 2))
    labels = np.concatenate([np.zeros(n_up, np.int64), np.ones(n - n_up, np.int64)])
    order = rng.permutation(n)
    return x[order].astype(np.float32), labels[order]


def load_mlp_weights() -> dict[str, np.ndarray]:
    """The bundled weights as numpy arrays (PyTorch layout: ``weight`` is ``(out, in)``)."""
    if not WEIGHTS_PATH.is_file():
        raise FileNotFoundError(
            f"demo-mlp weights not found at {WEIGHTS_PATH}. Reinstall gradsight, or retrain them with "
            "`python scripts/train_mlp.py` from the repository root."
        )
    with np.load(WEIGHTS_PATH) as f:
        return {k: f[k].astype(np.float32) for k in f.files}


def build_torch_mlp(hidden: int = HIDDEN) -> Any:
    """An untrained ``nn.Sequential(fc1=Linear(2, hidden), relu=ReLU(), fc2=Linear(hidden, 2))``."""
    from collections import OrderedDict

    from torch import nn

    return nn.Sequential(OrderedDict(fc1=nn.Linear(2, hidden), relu=nn.ReLU(), fc2=nn.Linear(hidden, 2)))


def load_mlp_model() -> Any:
    """The trained PyTorch demo MLP (``fc1 -> relu -> fc2``), in eval mode, on CPU.

    Input: float32 ``(N, 2)`` points (as from :func:`make_moons`); output: ``(N, 2)`` logits.
    """
    import torch

    w = load_mlp_weights()
    model = build_torch_mlp(w["fc1.weight"].shape[0])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()})
    return model.eval()


def load_keras_mlp_model() -> Any:
    """The Keras twin of :func:`load_mlp_model`: ``Dense fc1 -> ReLU relu -> Dense fc2``, same weights."""
    import keras

    w = load_mlp_weights()
    hidden = w["fc1.weight"].shape[0]
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(hidden, name="fc1"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(2, name="fc2"),
        ],
        name="demo_mlp",
    )
    # Keras keeps Dense kernels as (in, out): the transpose of PyTorch's weight.
    model.get_layer("fc1").set_weights([w["fc1.weight"].T, w["fc1.bias"]])
    model.get_layer("fc2").set_weights([w["fc2.weight"].T, w["fc2.bias"]])
    return model
