"""The PyTorch backend: session, capture, rules and the vector-Jacobian product."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch

from ...errors import InputError, ModelError, NotDifferentiableError
from ...rules import Rule, layer_switch
from ...targets import Target, select_output
from ..base import Backend, Capture, Gradients, Ops
from .capture import auto_layer_error, capture, capture_auto, hooked, is_spatial, resolve_layer
from .rules import apply_rule

__all__ = ["TorchBackend", "TorchOps"]


class TorchOps(Ops):
    channels_last = False

    def numpy(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()

    def shape(self, t: torch.Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def batch_size(self, t: torch.Tensor) -> int:
        return int(t.shape[0])

    def argmax(self, t: torch.Tensor, axis: int) -> torch.Tensor:
        return t.detach().argmax(dim=axis)

    def as_index(self, idx: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(idx), dtype=torch.long, device=like.device)

    def take_rows(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return t.gather(1, idx[:, None])[:, 0]

    def mean(self, t: torch.Tensor, axis: tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.mean(dim=axis, keepdim=keepdims)

    def sum(self, t: torch.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.sum(dim=axis, keepdim=keepdims)

    def relu(self, t: torch.Tensor) -> torch.Tensor:
        return torch.relu(t)

    def step(self, t: torch.Tensor) -> torch.Tensor:
        return (t > 0).to(t.dtype)

    def from_numpy(self, a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(a, device=like.device, dtype=like.dtype)
        # new batches keep a channels-last input's memory layout (mixing layouts is slow)
        return t.contiguous(memory_format=torch.channels_last) if a.ndim == 4 and _channels_last(like) else t

    def tile_batch(self, t: torch.Tensor, k: int) -> torch.Tensor:
        if not _channels_last(t):
            return t.repeat(k, *([1] * (t.dim() - 1)))
        out = torch.empty((k * t.shape[0],) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device,
                          memory_format=torch.channels_last)  # repeat() would return NCHW
        out.view((k,) + tuple(t.shape)).copy_(t)
        return out

    def reshape(self, t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return t.reshape(shape)

    def sigmoid(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(t)

    def concat(self, ts: list[torch.Tensor], axis: int = 0) -> torch.Tensor:
        return ts[0] if len(ts) == 1 else torch.cat(ts, dim=axis)

    def topk(self, t: torch.Tensor, k: int) -> torch.Tensor:
        return t.detach().topk(k, dim=1).indices

    def take_along(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return t.gather(1, idx)

    def min(self, t: torch.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.amin(dim=axis, keepdim=keepdims)

    def max(self, t: torch.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.amax(dim=axis, keepdim=keepdims)

    def safe_div(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(b))

    def resize(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = torch.nn.functional.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)
        return out[:, 0]


def _channels_last(t: torch.Tensor) -> bool:
    """True for a 4-D tensor stored NHWC (``memory_format=torch.channels_last``) and not NCHW."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


BATCHED_BACKWARD = True
"""k targets per sample: one batched backward pass (True) or k passes on the retained graph."""


def _per_column_grads(scores: torch.Tensor, wrt: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    """d scores[:, j] / d w for every column j of (N, k) ``scores``: (N, k, *w.shape[1:]) each.

    The k backward passes run as one batched pass (``is_grads_batched``: autograd vmaps the
    backward over k one-hot cotangents). Should an operation of the model have no batching
    rule, they run one after another on the retained graph instead.
    """
    n, k = scores.shape
    grads = None
    if BATCHED_BACKWARD:
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


def _grads(scores: torch.Tensor, wrt: list[torch.Tensor], retain: bool) -> tuple[torch.Tensor | None, ...]:
    """d scores / d w for each w: (N,) scores summed over the batch, (N, k) scores per column."""
    if scores.dim() == 2:  # k targets per sample
        return _per_column_grads(scores, wrt)
    return torch.autograd.grad(scores.sum(), wrt, allow_unused=True, retain_graph=retain)


def _check_tensors(outputs: Any) -> Any:
    """The selected output: a tensor, or a list of tensors when ``output=`` named several."""
    for o in outputs if isinstance(outputs, list) else [outputs]:
        if not isinstance(o, torch.Tensor):
            raise ModelError(f"the model output is a {type(o).__name__}, not a tensor; use output= to pick one.")
    return outputs


def _first_conv(model: torch.nn.Module) -> torch.nn.Module | None:
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            return m
    return None


class TorchBackend(Backend):
    """Backend for ``torch.nn.Module`` models (inputs channels-first, NCHW)."""

    name = "torch"
    ops = TorchOps()

    @contextmanager
    def session(self, model: torch.nn.Module, eval_mode: bool = True, logits: bool = False) -> Iterator[None]:
        """Eval mode (unless ``eval_mode=False``), gradients on; every flag restored on exit.

        With ``eval_mode=False`` BatchNorm running statistics would be updated by the
        forward pass; they are saved and written back. ``logits=True`` is refused: a
        PyTorch model returns what its forward computes.
        """
        if logits:
            raise ModelError(
                "logits=True is for Keras models whose last layer applies a softmax. A PyTorch model returns what "
                "its forward computes: explain a model without the final softmax (e.g. model[:-1] for an "
                "nn.Sequential), or pass target=callable on the outputs."
            )
        modes = [(m, m.training) for m in model.modules()]
        buffers = None if eval_mode else [(b, b.detach().clone()) for b in model.buffers()]
        try:
            if eval_mode:
                model.eval()
            with torch.inference_mode(False), torch.enable_grad():
                yield
        finally:
            for m, training in modes:
                m.training = training
            if buffers is not None:
                with torch.no_grad():
                    for b, saved in buffers:
                        b.copy_(saved)

    def prepare_input(self, model: torch.nn.Module, x: Any) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(x))
        elif isinstance(x, torch.Tensor):
            t = x
        else:
            raise InputError(f"x must be a torch.Tensor or a numpy array, got {type(x).__name__}.")
        if not t.is_floating_point():
            raise InputError(
                f"x has dtype {t.dtype}; gradients need a floating-point input. Convert and normalise it as "
                "the model expects (e.g. x.float() / 255, then the model's mean/std)."
            )
        if t.dim() < 2:
            raise InputError(f"x must be a batch with a leading batch axis; got shape {tuple(t.shape)} (use x[None]).")
        param = next(model.parameters(), None)
        device, dtype = (param.device, param.dtype) if param is not None else (t.device, t.dtype)
        conv = _first_conv(model)
        if isinstance(conv, torch.nn.Conv2d):
            c = conv.in_channels
            if t.dim() == 3:
                raise InputError(
                    f"x has shape {tuple(t.shape)} but the model's first convolution takes 4-D (N, C, H, W) "
                    "batches; add the batch axis with x[None]."
                )
            if t.dim() == 4 and t.shape[1] != c and t.shape[-1] == c:
                raise InputError(
                    f"x has shape {tuple(t.shape)}, which looks channels-last (N, H, W, C), but this PyTorch "
                    f"model takes channels-first (N, C, H, W) with C={c}; pass x.permute(0, 3, 1, 2) "
                    "(numpy: x.transpose(0, 3, 1, 2))."
                )
        # A private copy: the user's tensor is never modified nor marked requires_grad.
        return t.detach().to(device=device, dtype=dtype, copy=True)

    def input_layout(self, model: torch.nn.Module) -> str:
        return "channels_first"

    def activation_channel_axis(self) -> int:
        return 1

    def resolve_layer(self, model: torch.nn.Module, layer: Any) -> Any:
        found = resolve_layer(model, layer)
        return "auto" if found is None else found

    def gradients(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        target: Target,
        *,
        rule: Rule | None = None,
        layer: Any = None,
        call: int = -1,
        wrt_input: bool = True,
        output: int | str | None = None,
        layer_rule: Rule | None = None,
    ) -> Gradients:
        # The input always requires grad so that models with frozen parameters still
        # build a graph; autograd.grad below computes only the requested gradients.
        xin = x.detach().requires_grad_(True)
        switch = layer_switch(rule, layer_rule) if layer is not None else None
        applied = switch if switch is not None else rule
        with ExitStack() as stack:
            report = stack.enter_context(apply_rule(model, applied)) if applied is not None else None
            cap = auto = None
            if layer == "auto":
                auto = stack.enter_context(capture_auto(model))
            elif layer is not None:
                cap = stack.enter_context(capture(layer[1], layer[0]))
            raw = model(xin)
            if report is not None:
                report.check(f"{applied.name} rule on {type(model).__name__}")
        outputs = _check_tensors(select_output(raw, output))
        scores, idx = target.scores(outputs, self.ops)

        activation, name = None, None
        if auto is not None:
            if not auto:
                raise auto_layer_error(model)
            name = auto[-1].name
            seen = [s for s in auto if s.name == name]
            chosen = Capture(name, seen).get(call)  # same range check as an explicit layer
            if chosen.tensor._version != chosen.version:
                # An in-place op changed the layer's output after it was recorded: run again
                # with a copying capture of that one layer (the rare case pays a second pass).
                return self.gradients(
                    model, x, target, rule=rule, layer=resolve_layer(model, name), call=call,
                    wrt_input=wrt_input, output=output, layer_rule=layer_rule,
                )
            activation = chosen.tensor
        elif cap is not None:
            name = cap.name
            activation = cap.get(call)
            if not is_spatial(activation) and activation.dim() < 2:
                raise ModelError(f"layer {name!r} output has shape {tuple(activation.shape)}; pick a layer with a batch axis.")

        wrt = ([xin] if wrt_input else []) + ([activation] if activation is not None else [])
        if not scores.requires_grad:
            raise NotDifferentiableError(
                "the target score does not depend differentiably on the input: the forward pass ran without "
                "autograd (detach(), numpy, argmax or integer ops inside the model?). gradsight needs a model "
                "whose output is computed with differentiable torch operations."
            )
        if switch is None:
            grads = _grads(scores, wrt, retain=False)
        else:
            # One forward, two backward passes on its graph: down to the layer only, by the
            # layer's rule, then down to the input by the input's (activation is not None here).
            switch.current = switch.layer
            grads = _grads(scores, [activation], retain=wrt_input)
            if wrt_input:
                switch.current = switch.input
                grads = _grads(scores, [xin], retain=False) + grads
        for g, what in zip(grads, (["input"] if wrt_input else []) + ([f"layer {name!r}"] if activation is not None else [])):
            if g is None:
                raise NotDifferentiableError(
                    f"the target score does not depend on the {what} (no gradient path). "
                    + ("Choose a layer whose output feeds the model's output (or another call=)." if what != "input" else "")
                )
        gi = grads[0] if wrt_input else None
        gl = grads[-1] if activation is not None else None
        return Gradients(
            outputs=[o.detach() for o in outputs] if isinstance(outputs, list) else outputs.detach(),
            scores=scores.detach(),
            targets=idx,
            input_grad=gi,
            activation=None if activation is None else activation.detach(),
            layer_grad=gl,
            layer=name,
        )

    def forward(self, model: torch.nn.Module, x: torch.Tensor, output: int | str | None = None) -> torch.Tensor:
        with torch.no_grad():
            return _check_tensors(select_output(model(x), output))

    def forward_with_activation(
        self, model: torch.nn.Module, x: torch.Tensor, layer: Any, call: int = -1, output: int | str | None = None
    ) -> tuple[Any, torch.Tensor, str]:
        with torch.no_grad():
            if layer == "auto":
                with capture_auto(model) as seen:
                    raw = model(x)
                if not seen:
                    raise auto_layer_error(model)
                name = seen[-1].name
                chosen = Capture(name, [s for s in seen if s.name == name]).get(call)
                if chosen.tensor._version == chosen.version:
                    return _check_tensors(select_output(raw, output)), chosen.tensor, name
                layer = resolve_layer(model, name)  # changed in place after capture: copy it this time
            with capture(layer[1], layer[0]) as cap:
                raw = model(x)
        return _check_tensors(select_output(raw, output)), cap.get(call), cap.name

    def activations(self, model: torch.nn.Module, x: torch.Tensor, layer: Any, call: int = -1) -> tuple[torch.Tensor, str]:
        with torch.no_grad():
            if layer == "auto":
                with capture_auto(model) as seen:
                    model(x)
                if not seen:
                    raise auto_layer_error(model)
                layer = resolve_layer(model, seen[-1].name)
            with capture(layer[1], layer[0]) as cap:
                model(x)
        return cap.get(call), cap.name

    @contextmanager
    def backward_rule(self, model: torch.nn.Module, rule: Rule) -> Iterator[Any]:
        with apply_rule(model, rule) as report:
            yield report
        report.check(f"backward_rule({type(model).__name__}, {rule.name!r})")

    def layers(self, model: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, str, tuple[int, ...] | None]]:
        rows: list[tuple[str, str, tuple[int, ...] | None]] = []

        def hook_for(name: str) -> Any:
            def hook(mod: Any, inputs: Any, out: Any) -> None:
                rows.append((name, type(mod).__name__, tuple(out.shape) if isinstance(out, torch.Tensor) else None))

            return hook

        with hooked(((n, m) for n, m in model.named_modules() if m is not model), hook_for), torch.no_grad():
            model(x)
        return rows
