"""Backward rules for rectifiers, as data shared by every backend.

A rectifier ``f`` (ReLU, LeakyReLU, Keras' generalised ReLU) is described to a rule by
its local derivative ``f'(x)`` at the forward input (as a multiplication, ``dmul``) and by
``f`` itself. Given the
upstream gradient ``g`` a rule returns the gradient passed further down:

========== =========================== ===============================
rule       ReLU                        LeakyReLU(slope a)
========== =========================== ===============================
plain      g * 1[x > 0]                g * (1 if x > 0 else a)
deconvnet  relu(g)                     leaky_relu(g, a)       = f(g)
guided     relu(g) * 1[x > 0]          relu(g) * (1 if x > 0 else a)
========== =========================== ===============================

References: Zeiler & Fergus 2014 (deconvnet), Springenberg et al. 2015 (guided
backpropagation). Backends call :meth:`Rule.backward` with their own array module, so
the maths is written once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RuleNotAppliedError, UnknownMethodError, UnsupportedActivationWarning, close_matches, warn

__all__ = ["Rule", "RULES", "RuleReport", "RuleSwitch", "get_rule", "layer_switch"]

Tensor = Any


@dataclass(frozen=True)
class Rule:
    """A backward rule for rectifiers.

    Parameters
    ----------
    name:
        ``"plain"``, ``"deconvnet"`` or ``"guided"``.
    backward:
        ``backward(g, dmul, f, relu)``: ``g`` upstream gradient; ``dmul(t)`` is ``t`` times
        the activation's local derivative at its input, f'(x) (a function, so that a
        backend can use its fused kernel and never materialise f'(x)); ``f`` the
        activation applied elementwise; ``relu`` a plain ReLU of the same framework.
        Returns the gradient for the activation's input.
    """

    name: str
    backward: Callable[[Tensor, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]], Tensor]


def _plain(g: Tensor, dmul: Callable, f: Callable, relu: Callable) -> Tensor:
    return dmul(g)


def _deconvnet(g: Tensor, dmul: Callable, f: Callable, relu: Callable) -> Tensor:
    return f(g)


def _guided(g: Tensor, dmul: Callable, f: Callable, relu: Callable) -> Tensor:
    return dmul(relu(g))


RULES: dict[str, Rule] = {
    "plain": Rule("plain", _plain),
    "deconvnet": Rule("deconvnet", _deconvnet),
    "guided": Rule("guided", _guided),
}


class RuleSwitch:
    """Two rules over one recorded forward pass: one for the gradient at a layer, one for the input's.

    A backend records the forward pass with this object in place of a :class:`Rule` and
    sets ``current`` before each backward pass; every rectifier then back-propagates by
    ``current`` (guided Grad-CAM: plain down to its layer, guided down to the input).

    Attributes
    ----------
    input, layer: the rules of the input gradient and of the gradient at the layer.
    current: the rule the next backward pass takes (``input`` to begin with).
    name: what reports call it (the rule that is not plain; the input's if neither is plain).
    """

    def __init__(self, input: Rule, layer: Rule) -> None:
        self.input, self.layer, self.current = input, layer, input
        self.name = layer.name if input.name == "plain" else input.name

    def backward(self, g: Tensor, dmul: Callable, f: Callable, relu: Callable) -> Tensor:
        return self.current.backward(g, dmul, f, relu)


def layer_switch(rule: Rule | None, layer_rule: Rule | None) -> RuleSwitch | None:
    """A :class:`RuleSwitch` when the gradient at a layer takes ``layer_rule`` and the input gradient
    ``rule`` (None: plain) and the two differ; None when one rule serves both (``layer_rule`` None)."""
    if layer_rule is None:
        return None
    input_rule = RULES["plain"] if rule is None else rule
    return None if layer_rule == input_rule else RuleSwitch(input_rule, layer_rule)


def get_rule(rule: str | Rule) -> Rule:
    """Return the :class:`Rule` named ``rule`` (or ``rule`` itself)."""
    if isinstance(rule, Rule):
        return rule
    if rule == "guided_backprop":
        rule = "guided"
    try:
        return RULES[rule]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"unknown backward rule {rule!r}; use one of {sorted(RULES)}." + close_matches(str(rule), RULES)
        ) from None


class RuleReport:
    """What a rule changed in one forward pass (every backend fills one).

    Attributes
    ----------
    rule: the rule in force.
    overridden: rectifier calls that took the rule, by kind (``"relu"``, ``"leaky_relu"``, ...).
    unsupported: calls of other activations (GELU, ELU, ...), which kept their plain gradient.
    superseded: rectifier calls that an inner rule took instead (a method's own rule run inside
    a user's ``backward_rule`` block: the innermost rule wins).
    """

    def __init__(self, rule: Rule | RuleSwitch) -> None:
        self.rule = rule
        self.overridden: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()
        self.superseded: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.overridden.values())

    def check(self, what: str) -> None:
        """Raise :class:`RuleNotAppliedError` when nothing was overridden; warn about activations left plain."""
        if self.unsupported:
            names = ", ".join(f"{k} x{v}" for k, v in sorted(self.unsupported.items()))
            warn(
                f"{what}: the {self.rule.name!r} rule covers ReLU and LeakyReLU; these activations kept "
                f"their plain gradient: {names}.",
                UnsupportedActivationWarning,
            )
        if not self.count and not self.superseded:
            raise RuleNotAppliedError(
                f"{what}: the {self.rule.name!r} backward rule overrode no activation: the forward pass "
                "called no ReLU or LeakyReLU inside the model (as a module/layer, an activation argument or "
                "a function call). The result would be a plain gradient, so none is returned. Use "
                "method='saliency' for the plain gradient."
            )
