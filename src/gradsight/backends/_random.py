"""Framework-free random weights for the model-parameter randomisation check.

Both backends draw the same numbers for the same layer, so the check gives the same
result on a PyTorch model and on its Keras twin: values come from
``numpy.random.default_rng([seed, crc32(layer name), weight index])`` in the
*channels-first* layout of PyTorch (conv kernels ``(out, in, kh, kw)``, dense weights
``(out, in)``) and each backend transposes them into its own layout.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["random_like"]


def random_like(values: np.ndarray, seed: int, layer: str, index: int) -> np.ndarray:
    """Gaussian values with the mean and standard deviation of ``values`` (same shape, channels-first).

    Drawing with the trained tensor's own scale keeps the network's activations in range
    (so maps change because the weights carry no learned structure, not because a layer
    blew up); a constant tensor stays that constant.
    """
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng([int(seed), zlib.crc32(layer.encode()), int(index)])
    return (rng.standard_normal(v.shape) * v.std() + v.mean()).astype(values.dtype)
