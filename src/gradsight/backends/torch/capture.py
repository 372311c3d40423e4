"""Capturing a layer's output during a PyTorch forward pass.

A forward hook records the module's output at every call (a module may run several
times in one forward) and hands the rest of the network a copy, so that in-place
operations after the layer (``nn.ReLU(inplace=True)``, ``out += identity``) cannot
change the captured value. The hook is removed on exit, whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import LayerNotFoundError, ModelError, close_matches
from ..autolayer import pick, spatial_hint
from ..base import Capture, LayerRef

__all__ = ["Capture", "auto_choice", "capture", "capture_auto", "find_layer", "hooked", "is_spatial"]


@contextmanager
def hooked(
    modules: Iterable[tuple[str, torch.nn.Module]], hook_for: Callable[[str], Callable[..., Any]], pre: bool = False
) -> Iterator[None]:
    """Register ``hook_for(name)`` as a forward (``pre``: forward-pre) hook on each named
    module for the duration of the block; every hook is removed on exit, whatever happens."""
    handles = []
    try:
        for name, module in modules:
            register = module.register_forward_pre_hook if pre else module.register_forward_hook
            handles.append(register(hook_for(name)))
        yield
    finally:
        for h in handles:
            h.remove()


def find_layer(model: torch.nn.Module, layer: Any) -> LayerRef:
    """The module named ``layer`` (dotted, from ``named_modules()``) or the module object itself."""
    if isinstance(layer, torch.nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return LayerRef(name, module)
        raise LayerNotFoundError(
            f"the layer object {type(layer).__name__} is not a module of this model; pass one of its "
            "modules, a dotted name from model.named_modules(), or None for the automatic choice."
        )
    if not isinstance(layer, str):
        raise LayerNotFoundError(f"layer must be a name, a module or None; got {type(layer).__name__}.")
    modules = dict(model.named_modules())
    if layer in modules and layer != "":
        return LayerRef(layer, modules[layer])
    names = [n for n in modules if n]
    # no close name: list the convolutional layers instead
    hint = close_matches(layer, names) or spatial_hint([(n, type(m).__name__) for n, m in modules.items() if n])
    raise LayerNotFoundError(f"the model has no layer named {layer!r}." + hint)


def is_spatial(t: Any) -> bool:
    """A feature map Grad-CAM can use: (N, C, L), (N, C, H, W) or (N, C, D, H, W), more than one position."""
    return isinstance(t, torch.Tensor) and 3 <= t.dim() <= 5 and t.shape[2:].numel() > 1


@contextmanager
def capture_input(module: torch.nn.Module, name: str) -> Iterator[Capture]:
    """Record ``module``'s first input at every call; the module runs on a copy of it."""
    cap = Capture(name)

    def hook(mod: torch.nn.Module, args: Any, kwargs: Any) -> Any:
        first, rest, key = (args[0], args[1:], None) if args else (None, args, next(iter(kwargs), None))
        if first is None and key is not None:
            first = kwargs[key]
        if not isinstance(first, torch.Tensor):
            raise ModelError(
                f"layer {name!r} takes a {type(first).__name__} as its first input, not a tensor; "
                "layer_input=True needs a layer whose first input is one tensor."
            )
        cap.outputs.append(first)
        if key is None:
            return (first.clone(),) + tuple(rest), kwargs
        return args, {**kwargs, key: first.clone()}

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield cap
    finally:
        handle.remove()


@contextmanager
def capture(module: torch.nn.Module, name: str, inputs: bool = False) -> Iterator[Capture]:
    """Record ``module``'s output (``inputs``: first input) at every call; the network continues on a copy."""
    if inputs:
        with capture_input(module, name) as cap_in:
            yield cap_in
        return
    cap = Capture(name)

    def hook(mod: torch.nn.Module, inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise ModelError(
                f"layer {name!r} returns a {type(output).__name__}, not a tensor; choose a layer (or sub-module) "
                "whose output is one tensor."
            )
        cap.outputs.append(output)
        return output.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield cap
    finally:
        handle.remove()


@dataclass
class _Seen:
    name: str
    tensor: torch.Tensor
    version: int
    kind: str = ""  # the module's class name, for the automatic choice (autolayer.pick)


@contextmanager
def capture_auto(model: torch.nn.Module) -> Iterator[list[_Seen]]:
    """Record every module call whose output is spatial, in completion order.

    No copies are made (that would cost a clone per layer); the caller checks the
    tensor's version counter to detect an in-place change after the layer.
    """
    seen: list[_Seen] = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(mod: torch.nn.Module, inputs: Any, output: Any) -> None:
            if is_spatial(output):
                seen.append(_Seen(name, output, output._version, type(mod).__name__))

        return hook

    with hooked(((n, m) for n, m in model.named_modules() if m is not model), hook_for):
        yield seen


def auto_choice(seen: list[_Seen]) -> _Seen:
    """The record :func:`gradsight.backends.autolayer.pick` chooses among :func:`capture_auto`'s (non-empty)."""
    return seen[pick([s.kind for s in seen], [tuple(s.tensor.shape[2:]) for s in seen]) or 0]

