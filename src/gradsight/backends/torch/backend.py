"""The PyTorch backend: session, capture, rules and the vector-Jacobian product."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...errors import InputError, NotDifferentiableError
from ...rules import Rule, RuleReport, RuleSwitch
from .. import pipeline
from ..autolayer import auto_layer_error
from ..base import (
    Backend,
    Capture,
    Captured,
    Gradients,
    LayerChanged,
    LayerRef,
    Primitives,
    Request,
    Settings,
)
from ..outputs import check_tensors, select_output
from . import inspect as params
from . import params as sanity
from .attention import attentions
from .capture import _Seen, auto_choice, capture, capture_auto, find_layer, hooked
from .logits import final_softmax, softmax_session
from .ops import TorchOps
from .rules import apply_rule
from .tokens import channels_last_output, transformer_layer

if TYPE_CHECKING:
    from ...targets import Target

__all__ = ["TorchBackend", "TorchOps", "TorchPrimitives", "looped_backward"]


_BATCHED: ContextVar[bool] = ContextVar("gradsight_torch_batched_backward", default=True)


@contextmanager
def looped_backward() -> Iterator[None]:
    """k targets per sample take k backward passes on the retained graph inside the block,
    instead of one batched pass (for tests and benchmarks; the results are the same)."""
    token = _BATCHED.set(False)
    try:
        yield
    finally:
        _BATCHED.reset(token)


def _per_column_grads(scores: torch.Tensor, wrt: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    """d scores[:, j] / d w for every column j of (N, k) ``scores``: (N, k, *w.shape[1:]) each.

    The k backward passes run as one batched pass (``is_grads_batched``: autograd vmaps the
    backward over k one-hot cotangents). Should an operation of the model have no batching
    rule (or inside :func:`looped_backward`), they run one after another on the retained graph.
    """
    n, k = scores.shape
    grads = None
    if _BATCHED.get():
        eye = torch.eye(k, dtype=scores.dtype, device=scores.device)[:, None, :].expand(k, n, k)
        try:
            grads = torch.autograd.grad(scores, wrt, grad_outputs=eye, is_grads_batched=True, allow_unused=True,
                                        retain_graph=True)
        except RuntimeError:
            grads = None
    if grads is None:
        cols = [torch.autograd.grad(scores[:, j].sum(), wrt, retain_graph=True, allow_unused=True) for j in range(k)]
        grads = tuple(None if cols[0][i] is None else torch.stack([c[i] for c in cols]) for i in range(len(wrt)))
    return tuple(None if g is None else g.movedim(0, 1) for g in grads)


class _Captured(Captured):
    def __init__(self, model: torch.nn.Module, cap: Capture | None, auto: list[_Seen] | None) -> None:
        self.model, self.cap, self.auto = model, cap, auto

    def get(self, call: int) -> tuple[torch.Tensor, str]:
        if self.cap is not None:
            return self.cap.get(call), self.cap.name
        auto = self.auto or []
        if not auto:
            raise auto_layer_error(self.model, TorchBackend.layout)
        name = auto_choice(auto).name
        chosen = Capture(name, [s for s in auto if s.name == name]).get(call)  # same range check as a named layer
        if chosen.tensor._version != chosen.version:
            # An in-place op changed the layer's output after it was recorded: run again with
            # a copying capture of that one layer (the rare case pays a second pass).
            raise LayerChanged(find_layer(self.model, name))
        return chosen.tensor, name


class TorchPrimitives(Primitives):
    """The pipeline's PyTorch edge: autograd needs no recording scope beyond ``requires_grad``."""

    ops: TorchOps

    def __init__(self, ops: TorchOps, settings: Settings | None = None) -> None:
        self.ops, self.settings = ops, settings or Settings()

    @contextmanager
    def record(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        # The input always requires grad so that models with frozen parameters still
        # build a graph; autograd.grad computes only the requested gradients.
        yield x.detach().requires_grad_(True)

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> Any:
        return self.settings.call(model, x)

    def rule_scope(self, model: torch.nn.Module, rule: Rule | RuleSwitch) -> AbstractContextManager[RuleReport]:
        return apply_rule(model, rule)

    @contextmanager
    def capture(self, model: torch.nn.Module, layer: LayerRef) -> Iterator[Captured]:
        if layer.auto:
            with capture_auto(model) as seen:
                yield _Captured(model, None, seen)
        else:
            with capture(layer.obj, layer.name, layer.input) as cap:
                yield _Captured(model, cap, None)

    def vjp(self, scores: torch.Tensor, wrt: list[torch.Tensor], retain: bool) -> list[torch.Tensor | None]:
        if scores.dim() == 2:  # k targets per sample
            return list(_per_column_grads(scores, wrt))
        return list(torch.autograd.grad(scores.sum(), wrt, allow_unused=True, retain_graph=retain))

    def check_differentiable(self, scores: torch.Tensor) -> None:
        if not scores.requires_grad:
            raise NotDifferentiableError(
                "the target score does not depend differentiably on the input: the forward pass ran without "
                "autograd (detach(), numpy, argmax or integer ops inside the model?). gradsight needs a model "
                "whose output is computed with differentiable torch operations."
            )


_LAYOUTS = {1: ("(N, C, L)", "(N, L, C)"), 2: ("(N, C, H, W)", "(N, H, W, C)"), 3: ("(N, C, D, H, W)", "(N, D, H, W, C)")}


def _first_conv(model: torch.nn.Module) -> torch.nn.Module | None:
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            return m
    return None


class TorchBackend(Backend):
    """Backend for ``torch.nn.Module`` models (inputs channels-first, NCHW)."""

    name = "torch"
    ops = TorchOps()
    layout = "(N, C, H, W)"
    dense_kind = "nn.Linear"
    parameter_layers = staticmethod(sanity.parameter_layers)
    randomized = staticmethod(sanity.randomized)

    @contextmanager
    def session(
        self, model: torch.nn.Module, eval_mode: bool = True, logits: bool = False, forward_args: tuple[Any, ...] = (),
        forward_kwargs: Any = None,
    ) -> Iterator[TorchBackend]:
        """Eval mode (unless ``eval_mode=False``), gradients on; every flag restored on exit.

        With ``eval_mode=False`` BatchNorm running statistics would be updated by the
        forward pass; they are saved and written back. ``logits=True``: the model's output is
        the input of its final softmax / log-softmax (:mod:`.logits`); without it, such a
        model gets a SaturationWarning.
        """
        modes = [(m, m.training) for m in model.modules()]
        buffers = None if eval_mode else [(b, b.detach().clone()) for b in model.buffers()]
        try:
            if eval_mode and any(training for _, training in modes):  # a model already in eval mode is left be
                model.eval()
            with torch.inference_mode(False), torch.enable_grad(), softmax_session(model, logits):
                yield TorchBackend(Settings(eval_mode, logits, tuple(forward_args), forward_kwargs))
        finally:
            for m, training in modes:
                if m.training is not training:  # nn.Module.__setattr__ is slow: only the changed flags
                    m.training = training
            if buffers is not None:
                with torch.no_grad():
                    for b, saved in buffers:
                        b.copy_(saved)

    def compute_threads(self, n: int | None = None) -> int | None:
        """torch's intra-op threads (process-wide) before ``n`` is set."""
        old = torch.get_num_threads()
        if n is not None:
            torch.set_num_threads(int(n))
        return old

    def prepare_input(self, model: torch.nn.Module, x: Any) -> torch.Tensor:
        return self._tensor(model, x, check_layout=True)

    def prepare_inputs(self, model: torch.nn.Module, xs: list[Any], names: tuple[str, ...]) -> list[torch.Tensor]:
        # which input the first convolution reads is not known: no layout guesses here
        return [self._tensor(model, x, check_layout=False, name=n) for x, n in zip(xs, names)]

    def _tensor(self, model: torch.nn.Module, x: Any, check_layout: bool, name: str = "x") -> torch.Tensor:
        if isinstance(x, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(x))
        elif isinstance(x, torch.Tensor):
            t = x
        else:
            raise InputError(f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}.")
        if not t.is_floating_point():
            raise InputError(
                f"{name} has dtype {t.dtype}; gradients need a floating-point input. Convert and normalise it as "
                "the model expects (e.g. x.float() / 255, then the model's mean/std)."
            )
        if t.dim() < 2:
            raise InputError(
                f"{name} must be a batch with a leading batch axis; got shape {tuple(t.shape)} (use x[None])."
            )
        param = next(model.parameters(), None)
        device, dtype = (param.device, param.dtype) if param is not None else (t.device, t.dtype)
        conv = _first_conv(model) if check_layout else None
        if conv is not None:
            c, d = conv.in_channels, conv.weight.dim() - 2
            first, last = _LAYOUTS[d]
            if t.dim() == d + 1 and d > 1:  # a (C, L) signal and an (N, H, W) gray batch stay ambiguous
                raise InputError(
                    f"x has shape {tuple(t.shape)} but the model's first convolution takes {d + 2}-D {first} "
                    "batches; add the batch axis with x[None]."
                )
            if t.dim() == d + 2 and t.shape[1] != c and t.shape[-1] == c:
                order = (0, d + 1) + tuple(range(1, d + 1))
                raise InputError(
                    f"x has shape {tuple(t.shape)}, which looks channels-last {last}, but this PyTorch "
                    f"model takes channels-first {first} with C={c}; pass x.permute{order} "
                    f"(numpy: x.transpose{order})."
                )
        # A private copy: the user's tensor is never modified nor marked requires_grad.
        return t.detach().to(device=device, dtype=dtype, copy=True)

    def input_layout(self, model: torch.nn.Module) -> str:
        return "channels_first"

    def conv_rank(self, model: torch.nn.Module) -> int | None:
        conv = _first_conv(model)
        return None if conv is None else conv.weight.dim() - 2

    def activation_channel_axis(self) -> int:
        return 1

    def find_layer(self, model: torch.nn.Module, layer: Any) -> LayerRef:
        return find_layer(model, layer)

    def channels_last_output(self, model: torch.nn.Module, layer: str | None, shape: tuple[int, ...]) -> bool:
        return channels_last_output(model, layer, shape)  # see gradsight.backends.torch.tokens

    def resolve_layer(self, model: torch.nn.Module, layer: Any) -> LayerRef:
        """As :meth:`Backend.resolve_layer`; "auto" on a vision transformer is the input of the
        last block's attention (see :mod:`gradsight.backends.torch.tokens`)."""
        ref = super().resolve_layer(model, layer)
        return (transformer_layer(model) or ref) if ref.auto and not isinstance(layer, LayerRef) else ref

    def compute(self, model: torch.nn.Module, x: torch.Tensor, target: Target, request: Request) -> Gradients:
        return pipeline.gradients(TorchPrimitives(self.ops, self.settings), model, x, target, request)[0]

    def forward(self, model: torch.nn.Module, x: torch.Tensor, output: int | str | None = None) -> torch.Tensor:
        with torch.no_grad():
            return check_tensors(select_output(self.settings.call(model, x), output), self.ops.is_tensor)

    def activations(self, model: torch.nn.Module, x: torch.Tensor, layer: Any, call: int = -1) -> tuple[torch.Tensor, str]:
        # no output selection: a layer of a several-output model (a detector) has activations too
        _, activation, name = self.forward_with_activation(model, x, layer, call, select=False)
        return activation, name

    def forward_with_activation(
        self, model: torch.nn.Module, x: torch.Tensor, layer: Any, call: int = -1, output: int | str | None = None,
        select: bool = True,
    ) -> tuple[Any, torch.Tensor, str]:
        prims = TorchPrimitives(self.ops, self.settings)
        with torch.no_grad():
            try:
                with prims.capture(model, self.resolve_layer(model, layer)) as cap:
                    raw = prims.forward(model, x)
                activation, name = cap.get(call)
            except LayerChanged as changed:  # an in-place op after the automatic layer: copy that one
                with prims.capture(model, changed.layer) as cap:
                    raw = prims.forward(model, x)
                activation, name = cap.get(call)
        if not select:
            return raw, activation, name
        return check_tensors(select_output(raw, output), self.ops.is_tensor), activation, name

    def rule_scope(self, model: torch.nn.Module, rule: Rule | RuleSwitch) -> AbstractContextManager[RuleReport]:
        return apply_rule(model, rule)

    def final_softmax(self, model: torch.nn.Module, x: torch.Tensor) -> str | None:
        return final_softmax(model, x)

    def layers(self, model: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, str, tuple[int, ...] | None]]:
        rows: list[tuple[str, str, tuple[int, ...] | None]] = []

        def hook_for(name: str) -> Any:
            def hook(mod: Any, inputs: Any, out: Any) -> None:
                rows.append((name, type(mod).__name__, tuple(out.shape) if isinstance(out, torch.Tensor) else None))

            return hook

        with hooked(((n, m) for n, m in model.named_modules() if m is not model), hook_for), torch.no_grad():
            model(x)
        return rows

    def dense_layers(self, model: torch.nn.Module) -> list[tuple[str, Any]]:
        return params.dense_layers(model)

    def dense_params(self, layer: Any) -> tuple[np.ndarray, np.ndarray]:
        return params.dense_params(layer)

    def conv_layers(self, model: torch.nn.Module) -> list[tuple[str, Any]]:
        return params.conv_layers(model)

    def conv_kernel(self, layer: Any) -> np.ndarray:
        return params.conv_kernel(layer)

    def weights(self, model: torch.nn.Module) -> list[tuple[str, str, np.ndarray, bool]]:
        return params.weights(model)

    def attentions(self, model: torch.nn.Module, x: torch.Tensor, output: Any = None) -> tuple[Any, list[Any]]:
        return attentions(model, x, output, self.settings)

    def layer_inputs(
        self, model: torch.nn.Module, x: torch.Tensor, layers: list[tuple[str, Any]]
    ) -> list[tuple[str, torch.Tensor]]:
        with params.record_inputs(layers) as seen, torch.no_grad():
            model(x)
        return seen
