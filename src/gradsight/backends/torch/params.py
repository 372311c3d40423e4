"""Parameter layers and their randomisation (for the sanity check), restored exactly afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from ...errors import LayerNotFoundError, close_matches
from .._random import random_like

__all__ = ["parameter_layers", "randomized"]


def parameter_layers(model: torch.nn.Module) -> list[str]:
    """Dotted names of the modules that own parameters directly, in definition order (input to output)."""
    return [n for n, m in model.named_modules() if n and next(m.parameters(recurse=False), None) is not None]


@contextmanager
def randomized(model: torch.nn.Module, layers: Sequence[str], seed: int = 0) -> Iterator[torch.nn.Module]:
    """The model with the parameters of ``layers`` re-drawn (see :func:`random_like`), in place.

    On exit, after success or any error, every parameter holds its original values again
    (same tensor objects, same bytes); buffers (BatchNorm statistics) are never touched.
    """
    modules = dict(model.named_modules())
    for name in layers:
        if name not in modules:
            raise LayerNotFoundError(
                f"no module named {name!r} to randomise.{close_matches(name, parameter_layers(model))}"
            )
    saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for name in layers:
                for i, (_, p) in enumerate(modules[name].named_parameters(recurse=False)):
                    saved.append((p, p.detach().clone()))
                    p.copy_(torch.from_numpy(random_like(p.detach().cpu().numpy(), seed, name, i)))
        yield model
    finally:
        with torch.no_grad():
            for p, value in reversed(saved):
                p.copy_(value)
