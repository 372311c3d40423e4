"""The seam between framework-free methods and a framework.

A method (saliency, Grad-CAM, ...) is written once against :class:`Backend`. A backend
answers four questions for one kind of model:

- *session*: run with the model in eval mode (by default) and leave it exactly as it was;
- *capture*: hand back a chosen layer's output (and the gradient at it), whatever kind
  of model it is;
- *rules*: make every rectifier back-propagate by a :class:`~gradsight.rules.Rule`;
- *vjp*: the gradient of a per-sample score w.r.t. the input and/or the captured layer
  output, computing nothing else.

Capture, rules and the vjp meet in one call, :meth:`Backend.gradients`, because a
framework that records gradients on a tape (TensorFlow) needs the forward pass, the
target and the backward pass inside one recording. The maths after the gradient uses
``backend.ops``, a handful of array operations.

Backends are chosen per model and imported lazily: importing gradsight imports neither
torch nor tensorflow.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LayerNotCalledError, ModelError
from ..rules import Rule
from ..targets import Target

__all__ = ["Backend", "Capture", "Gradients", "Ops", "backend_for"]

Tensor = Any


class Ops:
    """Array operations the methods need, per framework. All take and return tensors.

    ``channels_last`` is the framework's convention for image-like tensors (PyTorch
    False: (N, C, H, W); Keras True: (N, H, W, C)); targets on segmentation and detection
    outputs use it unless told a layout.
    """

    channels_last: bool = False

    def numpy(self, t: Tensor) -> np.ndarray: ...
    def shape(self, t: Tensor) -> tuple[int, ...]: ...
    def batch_size(self, t: Tensor) -> int: ...
    def argmax(self, t: Tensor, axis: int) -> Tensor: ...
    def as_index(self, idx: np.ndarray, like: Tensor) -> Tensor: ...
    def take_rows(self, t: Tensor, idx: Tensor) -> Tensor: ...
    def mean(self, t: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    def sum(self, t: Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    def relu(self, t: Tensor) -> Tensor: ...
    def step(self, t: Tensor) -> Tensor: ...
    def from_numpy(self, a: np.ndarray, like: Tensor) -> Tensor: ...
    def tile_batch(self, t: Tensor, k: int) -> Tensor: ...
    def reshape(self, t: Tensor, shape: tuple[int, ...]) -> Tensor: ...
    def sigmoid(self, t: Tensor) -> Tensor: ...
    def concat(self, ts: list[Tensor], axis: int = 0) -> Tensor: ...
    def topk(self, t: Tensor, k: int) -> Tensor:
        """Indices (N, k) of the k largest values of each row of ``t`` (N, C), largest first; no gradient."""
    def take_along(self, t: Tensor, idx: Tensor) -> Tensor:
        """``t[i, idx[i, j]]`` for ``t`` (N, C) and ``idx`` (N, k): (N, k), differentiable in ``t``."""
    def min(self, t: Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    def max(self, t: Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    def safe_div(self, a: Tensor, b: Tensor) -> Tensor:
        """``a / b`` where ``b != 0``, 0 where ``b == 0`` (broadcasting)."""
    def resize(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinear resize of (B, h, w) maps to (B, H, W), ``align_corners=False`` (as :func:`gradsight.render.resize`)."""


@dataclass
class Gradients:
    """What :meth:`Backend.gradients` returns (tensors of the model's framework).

    Attributes
    ----------
    outputs: the selected model output, detached (a list when several were selected).
    scores: (N,) target scores, or (N, k) for k targets per sample; detached.
    targets: class ids shaped like ``scores``, or None for targets that are not classes.
    input_grad: d scores / d input, input layout; None unless asked for.
    activation: the captured layer output; None unless a layer was given.
    layer_grad: d scores / d activation; None unless a layer was given.
    layer: resolved layer name, or None.

    With (N, k) scores each gradient gains a k axis after the batch axis: ``input_grad``
    (N, k, *input) and ``layer_grad`` (N, k, *activation): entry ``[i, j]`` is the gradient
    of ``scores[i, j]`` (the k backward passes run batched).
    """

    outputs: Tensor
    scores: Tensor
    targets: Tensor | None
    input_grad: Tensor | None = None
    activation: Tensor | None = None
    layer_grad: Tensor | None = None
    layer: str | None = None


@dataclass
class Capture:
    """A layer's outputs recorded at each of its calls in one forward pass (any framework)."""

    name: str
    outputs: list[Tensor] = field(default_factory=list)

    def get(self, call: int = -1) -> Tensor:
        """The output of the ``call``-th call (-1: the last); :class:`LayerNotCalledError` if there is none."""
        if not self.outputs:
            raise LayerNotCalledError(
                f"layer {self.name!r} was never called during the forward pass, so it has no output to explain; "
                "choose a layer that the model's forward uses (`gradsight layers --model ...` lists them)."
            )
        try:
            return self.outputs[call]
        except IndexError:
            raise LayerNotCalledError(
                f"layer {self.name!r} was called {len(self.outputs)} time(s) in the forward pass; call={call} "
                f"is out of range (use 0..{len(self.outputs) - 1}, or -1 for the last call)."
            ) from None


class Backend(ABC):
    """One framework's answers to the questions methods ask (see module docstring)."""

    name: str
    ops: Ops

    @abstractmethod
    def session(self, model: Any, eval_mode: bool = True, logits: bool = False) -> AbstractContextManager[None]:
        """Context in which the model runs; on exit every module/layer is as before.

        ``logits=True`` explains the pre-softmax scores of a model whose last layer
        applies a softmax (backends that cannot do this raise :class:`ModelError`).
        """

    @abstractmethod
    def prepare_input(self, model: Any, x: Any) -> Tensor:
        """A framework tensor of ``x`` on the model's device and dtype; ``x`` is not modified."""

    @abstractmethod
    def input_layout(self, model: Any) -> str:
        """``"channels_first"`` or ``"channels_last"``: where image inputs keep channels."""

    @abstractmethod
    def activation_channel_axis(self) -> int:
        """Channel axis of 4-D layer outputs (1 for NCHW, -1 for NHWC)."""

    @abstractmethod
    def resolve_layer(self, model: Any, layer: Any) -> Any:
        """Validate ``layer`` (a name, a layer object, or None/"auto") for :meth:`gradients`."""

    @abstractmethod
    def gradients(
        self,
        model: Any,
        x: Tensor,
        target: Target,
        *,
        rule: Rule | None = None,
        layer: Any = None,
        call: int = -1,
        wrt_input: bool = True,
        output: int | str | None = None,
        layer_rule: Rule | None = None,
    ) -> Gradients:
        """One forward and one backward for the whole batch.

        ``rule`` makes rectifiers back-propagate by it (an error if none was overridden).
        ``layer`` (from :meth:`resolve_layer`; ``"auto"`` for the last 4-D spatial layer)
        is captured at its ``call``-th call and the gradient at it returned. With
        ``wrt_input=False`` the backward pass stops at the layer.

        ``layer_rule`` (with a layer): the gradient at the layer is taken by this rule and
        the input gradient by ``rule`` (None: plain), from the same forward pass; where
        they differ the backward runs twice, once down to the layer and once to the input
        (see :class:`~gradsight.rules.RuleSwitch`). None: ``rule`` for both.
        """

    @abstractmethod
    def forward(self, model: Any, x: Tensor, output: int | str | None = None) -> Tensor:
        """The selected model output for ``x``, without recording gradients."""

    def activations(self, model: Any, x: Tensor, layer: Any, call: int = -1) -> tuple[Tensor, str]:
        """``(output of layer at its call-th call, resolved layer name)`` for ``x``, forward only.

        ``layer`` is what :meth:`resolve_layer` returned (``"auto"`` included).
        """
        raise NotImplementedError(f"the {self.name} backend cannot capture activations yet")

    def forward_with_activation(
        self, model: Any, x: Tensor, layer: Any, call: int = -1, output: int | str | None = None
    ) -> tuple[Tensor, Tensor, str]:
        """``(selected output, layer output at its call-th call, resolved layer name)``, forward only.

        One forward pass where the backend can (methods that weigh a layer's channels without
        a gradient: Eigen-CAM, Score-CAM); this default runs two.
        """
        activation, name = self.activations(model, x, layer, call)
        return self.forward(model, x, output), activation, name

    @abstractmethod
    def backward_rule(self, model: Any, rule: Rule) -> AbstractContextManager[Any]:
        """Public ``with`` block: the user's own gradient code sees ``rule``."""

    @abstractmethod
    def layers(self, model: Any, x: Tensor) -> list[tuple[str, str, tuple[int, ...] | None]]:
        """``(name, type, output shape)`` for every layer, in call order, from one forward."""


def _framework_of(model: Any) -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.Model):
        return "keras"
    return None


def backend_for(model: Any) -> Backend:
    """The backend for ``model``, imported on first use."""
    kind = _framework_of(model)
    if kind == "torch":
        from .torch import TorchBackend

        return TorchBackend()
    if kind == "keras":
        try:
            from .keras import KerasBackend
        except ImportError as exc:  # the Keras backend lands separately
            raise ModelError(f"Keras models need gradsight's Keras backend, which could not load: {exc}") from exc
        return KerasBackend()
    raise ModelError(
        f"gradsight cannot explain a {type(model).__module__}.{type(model).__name__}: "
        "pass a torch.nn.Module or a keras.Model."
    )
