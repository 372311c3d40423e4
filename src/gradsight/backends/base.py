"""The seam between framework-free methods and a framework: types only.

A method (saliency, Grad-CAM, ...) is written once against :class:`Backend`; the
gradient pipeline (:mod:`gradsight.backends.pipeline`) is written once against
:class:`Primitives`, the few things only a framework can do. Backends are chosen per
model and imported lazily by :func:`gradsight.backends.backend_for`.

Adding a third backend (say Keras on JAX) takes one folder, ``backends/<name>/``:

1. ``ops.py``: subclass :class:`Ops`; every abstract method must be written, or the
   class cannot be instantiated (set ``channels_last`` to the framework's convention).
2. ``capture.py``: ``find_layer`` (a name or layer object -> :class:`LayerRef`) and a
   context manager recording a layer's outputs (a :class:`Captured`), explicit or auto.
3. ``rules.py``: a context manager making every rectifier back-propagate by a
   :class:`~gradsight.rules.Rule`, filling a :class:`~gradsight.rules.RuleReport`.
4. ``backend.py``: a :class:`Primitives` subclass (``record`` opens the gradient
   recording, ``forward`` calls the model, ``vjp`` takes gradients; per-call state lives
   on that object, never on the backend) and a :class:`Backend` subclass whose
   ``compute`` runs :func:`gradsight.backends.pipeline.gradients` with it.
5. One line in ``backends/__init__.py``'s ``_framework_of`` so models of that kind find it.
6. Run ``tests/contract`` with the new backend added to its sides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._deprecation import moved
from ..errors import LayerNotCalledError
from .ops import Ops, Tensor

if TYPE_CHECKING:
    from ..rules import Rule, RuleReport, RuleSwitch
    from ..targets import Target
    from .several import Packing

__all__ = [
    "AUTO", "Backend", "Capture", "Captured", "Gradients", "LayerChanged", "LayerRef", "Ops", "Primitives",
    "Request", "Settings",
]


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer: its name (PyTorch dotted, Keras ``outer/inner`` path) and the object.

    ``AUTO`` (``auto=True``, no object) asks for the automatic layer (the last convolution
    stage's 4-D output, :mod:`.autolayer`; a ViT: the last attention's input), chosen during the
    forward pass. ``input``: capture the layer's first input. Equality ignores ``obj``.
    """

    name: str
    obj: Any = field(default=None, compare=False, repr=False)
    auto: bool = False
    input: bool = False

    def without_obj(self) -> LayerRef:
        """The same reference without the object (for cache keys that must not hold a layer)."""
        return LayerRef(self.name, None, self.auto, self.input)


AUTO = LayerRef("auto", None, auto=True)


@dataclass(frozen=True)
class Settings:
    """How one session runs the model (see :meth:`Backend.session`); :meth:`call` runs it."""

    eval_mode: bool = True
    logits: bool = False
    forward_args: tuple[Any, ...] = field(default=(), compare=False)  # passed to the model, not explained
    forward_kwargs: Any = field(default=None, compare=False)
    inputs: Packing | None = None  # several inputs, packed into one tensor (see .several)

    def call(self, model: Any, x: Any, **kw: Any) -> Any:
        if self.inputs is not None:
            args, named = self.inputs.call_args(x)
            return model(*args, *self.forward_args, **named, **dict(self.forward_kwargs or {}), **kw)
        return model(x, *self.forward_args, **dict(self.forward_kwargs or {}), **kw)


@dataclass(frozen=True)
class Request:
    """What one gradient computation is asked for (everything but model, input and target)."""

    rule: Rule | None = None
    layer: LayerRef | None = None
    call: int = -1
    wrt_input: bool = True
    output: int | str | tuple[int | str, ...] | None = None
    layer_rule: Rule | None = None
    layer_map: Callable[[Ops, Tensor, Tensor], Any] | None = None  # hashable; see Gradients.layer_map


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
    layer_map: Any = None  # request.layer_map(ops, activation, layer_grad) (tensors, a dict of them), in the compiled pass


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


class LayerChanged(Exception):
    """Raised by :meth:`Captured.get` when an in-place op changed the chosen output after it was
    recorded; the pipeline runs again capturing ``layer`` explicitly (a copying capture)."""

    def __init__(self, layer: LayerRef) -> None:
        super().__init__(layer.name)
        self.layer = layer


class Captured(ABC):
    """What a capture context yields: after the forward pass, the chosen layer output."""

    @abstractmethod
    def get(self, call: int) -> tuple[Tensor, str]:
        """``(output at the call-th call, layer name)``; :class:`LayerNotCalledError` when there is none."""


class Primitives(ABC):
    """One gradient computation's framework edge; built per call, so it may hold that call's state.

    The pipeline enters ``record`` (the gradient recording: forward and target happen
    inside it, which a tape-based framework needs), inside it ``rule_scope`` and
    ``capture``, calls ``forward``, and after ``record`` takes ``vjp``.
    """

    ops: Ops

    @abstractmethod
    def record(self, x: Tensor) -> AbstractContextManager[Tensor]:
        """Start recording gradients from ``x``; yields the tensor to feed the model."""

    @abstractmethod
    def forward(self, model: Any, x: Tensor) -> Any:
        """The model's raw output for ``x`` (as the session's settings say)."""

    @abstractmethod
    def rule_scope(self, model: Any, rule: Rule | RuleSwitch) -> AbstractContextManager[RuleReport]:
        """Inside the block, rectifiers called by ``model`` back-propagate by ``rule``."""

    @abstractmethod
    def capture(self, model: Any, layer: LayerRef) -> AbstractContextManager[Captured]:
        """Record ``layer``'s outputs (``AUTO``: every spatial output) inside the block."""

    @abstractmethod
    def vjp(self, scores: Tensor, wrt: list[Tensor], retain: bool) -> list[Tensor | None]:
        """d scores / d w for each w ((N,) scores: summed over the batch; (N, k): per column,
        stacked after the batch axis); None where there is no path. ``retain``: another vjp follows."""

    def check_differentiable(self, scores: Tensor) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~gradsight.errors.NotDifferentiableError` when ``scores`` carry no gradient."""


class Backend(ABC):
    """One framework's answers to the questions methods ask (see the module docstring).

    A backend object holds no per-call state: :meth:`session` yields a backend bound to
    that session's :class:`Settings`, which methods receive.
    """

    name: str
    ops: Ops
    layout: str = "(N, C, H, W)"  # how the 4-D layer outputs look, for messages

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    @abstractmethod
    def session(self, model: Any, eval_mode: bool = True, logits: bool = False, forward_args: tuple[Any, ...] = (),
                forward_kwargs: Any = None) -> AbstractContextManager[Backend]:
        """Context in which the model runs; on exit every module/layer is as before.

        Yields a backend bound to ``Settings(eval_mode, logits, ...)``. ``logits=True``
        explains the scores before the model's final softmax / log-softmax (see
        :meth:`final_softmax`); a model without one raises :class:`ModelError`.
        """

    @abstractmethod
    def prepare_input(self, model: Any, x: Any) -> Tensor:
        """A framework tensor of ``x`` on the model's device and dtype; ``x`` is not modified."""

    spreads_inputs: bool = True
    """Several inputs (:mod:`.several`): ``model(*x)`` / ``model(**x)``; False: the list or dict is one argument."""

    def prepare_inputs(self, model: Any, xs: list[Any], names: tuple[str, ...]) -> list[Tensor]:
        """Several inputs: each as :meth:`prepare_input` makes one (checked against the model's
        input of that position or name, where the backend knows it)."""
        return [self.prepare_input(model, x) for x in xs]

    def with_inputs(self, packing: Packing) -> Backend:
        """This session's backend, taking the packed input of ``packing`` (see :mod:`.several`)."""
        return type(self)(replace(self.settings, inputs=packing))

    @abstractmethod
    def input_layout(self, model: Any) -> str:
        """``"channels_first"`` or ``"channels_last"``: where image inputs keep channels."""

    @abstractmethod
    def conv_rank(self, model: Any) -> int | None:
        """Spatial axes (1, 2, 3) of the model's first convolution, None without one.

        Tells a 1-D signal (N, C, L) / (N, L, C) from a gray image (N, H, W) (both rank 3).
        """

    @abstractmethod
    def activation_channel_axis(self) -> int:
        """Channel axis of 4-D layer outputs (1 for NCHW, -1 for NHWC)."""

    def channels_last_output(self, model: Any, layer: str | None, shape: tuple[int, ...]) -> bool:
        """Whether ``layer``'s 4-D output is (N, H, W, C) although :meth:`activation_channel_axis`
        says channels first (PyTorch: torchvision's Swin stages). False unless a backend knows better."""
        return False

    @abstractmethod
    def find_layer(self, model: Any, layer: Any) -> LayerRef:
        """The layer named ``layer`` (or the layer object itself) in ``model``; LayerNotFoundError otherwise."""

    def resolve_layer(self, model: Any, layer: Any) -> LayerRef:
        """Validate ``layer`` (a name, a layer object, a LayerRef, or None/"auto" -> :data:`AUTO`)."""
        if isinstance(layer, LayerRef):
            return layer
        if layer is None or (isinstance(layer, str) and layer == "auto"):
            return AUTO
        return self.find_layer(model, layer)

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
        output: int | str | tuple[int | str, ...] | list[int | str] | None = None,
        layer_rule: Rule | None = None, layer_map: Callable[[Ops, Tensor, Tensor], Any] | None = None,
    ) -> Gradients:
        """One forward and one backward for the whole batch.

        ``rule`` makes rectifiers back-propagate by it (an error if none was overridden).
        ``layer`` (a :class:`LayerRef` from :meth:`resolve_layer`; :data:`AUTO` for the
        automatic layer) is captured at its ``call``-th call and the gradient at it
        returned. With ``wrt_input=False`` the backward pass stops at the layer.

        ``layer_rule`` (with a layer): the gradient at the layer is taken by this rule and
        the input gradient by ``rule`` (None: plain), from the same forward pass; where
        they differ the backward runs twice, once down to the layer and once to the input
        (see :class:`~gradsight.rules.RuleSwitch`). None: ``rule`` for both. ``layer_map``: see :class:`Request`.
        """
        ref = None if layer is None else self.resolve_layer(model, layer)
        out = tuple(output) if isinstance(output, list) else output
        return self.compute(model, x, target, Request(rule, ref, call, wrt_input, out, layer_rule, layer_map))

    @abstractmethod
    def compute(self, model: Any, x: Tensor, target: Target, request: Request) -> Gradients:
        """:meth:`gradients` for a checked :class:`Request` (runs the shared pipeline)."""

    @abstractmethod
    def forward(self, model: Any, x: Tensor, output: int | str | None = None) -> Tensor:
        """The selected model output for ``x``, without recording gradients."""

    @abstractmethod
    def activations(self, model: Any, x: Tensor, layer: Any, call: int = -1) -> tuple[Tensor, str]:
        """``(output of layer at its call-th call, resolved layer name)`` for ``x``, forward only.

        ``layer`` is what :meth:`resolve_layer` returned (:data:`AUTO` included).
        """

    def final_softmax(self, model: Any, x: Tensor) -> str | None:
        """What the model's output comes from when it ends in a softmax / log-softmax (for messages), else None.

        May run one forward pass on ``x`` (inside :meth:`session`). Backends that cannot tell return None.
        """
        return None

    def forward_with_activation(
        self, model: Any, x: Tensor, layer: Any, call: int = -1, output: int | str | None = None
    ) -> tuple[Tensor, Tensor, str]:
        """``(selected output, layer output at its call-th call, resolved layer name)``, forward only.

        ``layer`` as for :meth:`activations`. One forward pass where the backend can (methods
        that weigh a layer's channels without a gradient: Eigen-CAM, Score-CAM); this default runs two.
        """
        activation, name = self.activations(model, x, layer, call)
        return self.forward(model, x, output), activation, name

    @abstractmethod
    def parameter_layers(self, model: Any) -> list[str]:
        """Layers owning trainable parameters, input to output (the sanity check's order)."""

    @abstractmethod
    def randomized(self, model: Any, layers: Any, seed: int = 0) -> AbstractContextManager[Any]:
        """``with`` block: ``layers``' parameters re-drawn (same numbers in every backend), restored on exit."""

    @abstractmethod
    def rule_scope(self, model: Any, rule: Rule | RuleSwitch) -> AbstractContextManager[RuleReport]:
        """Inside the block, rectifiers called by ``model`` back-propagate by ``rule`` (see :class:`Primitives`)."""

    @contextmanager
    def backward_rule(self, model: Any, rule: Rule) -> Iterator[RuleReport]:
        """Public ``with`` block: the user's own gradient code sees ``rule``; checked on exit."""
        with self.rule_scope(model, rule) as report:
            yield report
        report.check(f"backward_rule({type(model).__name__}, {rule.name!r})")

    def compute_threads(self, n: int | None = None) -> int | None:
        """CPU threads of one model call (``n``: set them; the caller restores); None: fixed when the framework starts."""
        return None

    @abstractmethod
    def layers(self, model: Any, x: Tensor) -> list[tuple[str, str, tuple[int, ...] | None]]:
        """``(name, type, output shape)`` for every layer, in call order, from one forward."""

    # -- parameter questions (gradsight.inspect) -------------------------------------------

    dense_kind: str = "Dense"  # what the framework calls a dense layer, for messages

    @abstractmethod
    def dense_layers(self, model: Any) -> list[tuple[str, Any]]:
        """``(name, layer)`` of every dense (fully connected) layer, in the model's order."""

    @abstractmethod
    def dense_params(self, layer: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(weight (out, in), bias (out,))`` as float32 numpy; a missing bias is zeros."""

    @abstractmethod
    def conv_layers(self, model: Any) -> list[tuple[str, Any]]:
        """``(name, layer)`` of every 2-D convolution, in the model's order."""

    @abstractmethod
    def conv_kernel(self, layer: Any) -> np.ndarray:
        """The kernels as float32 ``(O, I, kH, kW)`` whatever the framework keeps."""

    @abstractmethod
    def weights(self, model: Any) -> list[tuple[str, str, np.ndarray, bool]]:
        """``(layer, weight name, values, trainable)`` for every weight, layer by layer."""

    @abstractmethod
    def layer_inputs(self, model: Any, x: Tensor, layers: list[tuple[str, Any]]) -> list[tuple[str, Tensor]]:
        """``(name, first input)`` of each call of ``layers`` in one forward pass of ``x``, in call order."""

    @abstractmethod
    def attentions(self, model: Any, x: Tensor, output: Any = None) -> tuple[Tensor, list[Tensor]]:
        """``(selected output, [attention probabilities (N, heads, T, T) per layer])``, forward only."""


# Deprecated: the registry moved to gradsight.backends (imported by name, only when used).
__getattr__ = moved(__name__, {"backend_for": "gradsight.backends", "_framework_of": "gradsight.backends"})
