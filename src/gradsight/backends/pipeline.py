"""The gradient pipeline, written once for every backend.

One forward and one or two backward passes, in framework-free steps over a backend's
:class:`~gradsight.backends.base.Primitives`:

1. the rule: with a ``layer_rule`` unlike ``rule``, a :class:`~gradsight.rules.RuleSwitch`;
2. ``record`` (TensorFlow: the tape), inside it ``rule_scope`` and ``capture``, then the
   model's ``forward``, the output selection and the target's scores;
3. the captured layer output at its ``call``-th call (an in-place change after an
   automatic capture runs the pass again with an explicit, copying capture);
4. the vector-Jacobian product(s): one pass, or with a switch one down to the layer by
   the layer's rule and one down to the input by the input's, on the same recording;
5. the not-differentiable checks, the request's ``layer_map`` (a CAM's weighing), and
   everything returned detached.

A backend that compiles (Keras traces this whole function with ``tf.function``) calls
it inside its compiled function; a backend that does not calls it directly.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, NotDifferentiableError
from ..rules import layer_switch
from .base import Gradients, LayerChanged, Primitives, Request
from .outputs import check_tensors, select_output

if TYPE_CHECKING:
    from ..rules import RuleReport
    from ..targets import Target

__all__ = ["gradients"]


def gradients(
    p: Primitives, model: Any, x: Any, target: Target, req: Request, check_rules: bool = True
) -> tuple[Gradients, RuleReport | None]:
    """:meth:`Backend.gradients` for ``req``, with ``p``'s primitives; also the rule report.

    ``check_rules=False`` leaves :meth:`RuleReport.check` to the caller (a compiled
    function runs this once, at tracing, but must check at every call).
    """
    ops = p.ops
    switch = layer_switch(req.rule, req.layer_rule) if req.layer is not None else None
    applied = switch if switch is not None else req.rule
    report: RuleReport | None = None
    with p.record(x) as xin:
        with ExitStack() as stack:
            if applied is not None:
                report = stack.enter_context(p.rule_scope(model, applied))
            cap = stack.enter_context(p.capture(model, req.layer)) if req.layer is not None else None
            raw = p.forward(model, xin)
        if check_rules and report is not None:
            report.check(f"{report.rule.name} rule on {type(model).__name__}")
        outputs = check_tensors(select_output(raw, req.output), ops.is_tensor)
        scores, idx = target.scores(outputs, ops)

    activation, name = None, None
    if cap is not None:
        try:
            activation, name = cap.get(req.call)
        except LayerChanged as changed:
            return gradients(p, model, x, target, replace(req, layer=changed.layer), check_rules)
        if len(ops.shape(activation)) < 2:
            raise ModelError(
                f"layer {name!r} output has shape {tuple(ops.shape(activation))}; pick a layer with a batch axis."
            )

    what = (["input"] if req.wrt_input else []) + ([f"layer {name!r}"] if activation is not None else [])
    sources = ([xin] if req.wrt_input else []) + ([activation] if activation is not None else [])
    p.check_differentiable(scores)
    if switch is None or activation is None:
        grads = p.vjp(scores, sources, retain=False) if sources else []
    else:
        # One forward, two backward passes on its recording: down to the layer only, by the
        # layer's rule, then down to the input by the input's.
        switch.current = switch.layer
        grads = p.vjp(scores, [activation], retain=req.wrt_input)
        if req.wrt_input:
            switch.current = switch.input
            grads = p.vjp(scores, [xin], retain=False) + grads
    for g, w in zip(grads, what):
        if g is None:
            raise NotDifferentiableError(
                f"the target score does not depend differentiably on the {w} (no gradient path: an integer "
                "cast, argmax or numpy step inside the model?)."
                + (" Choose a layer whose output feeds the model's output (or another call=)." if w != "input" else "")
            )
    layer_grad = grads[-1] if activation is not None else None
    detached = None if activation is None else ops.detach(activation)
    layer_map = None
    if req.layer_map is not None and detached is not None and layer_grad is not None:
        layer_map = req.layer_map(ops, detached, layer_grad)  # compiled with the rest where the backend compiles
    result = Gradients(
        outputs=[ops.detach(o) for o in outputs] if isinstance(outputs, list) else ops.detach(outputs),
        scores=ops.detach(scores),
        targets=idx,
        input_grad=grads[0] if req.wrt_input else None,
        activation=detached,
        layer_grad=layer_grad,
        layer=name,
        layer_map=layer_map,
    )
    return result, report
