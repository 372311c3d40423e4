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

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RuleNotAppliedError, UnknownMethodError, UnsupportedActivationWarning, close_matches

__all__ = ["Rule", "RULES", "RuleReport", "get_rule"]

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
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.overridden: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.overridden.values())

    def check(self, what: str) -> None:
        """Raise :class:`RuleNotAppliedError` when nothing was overridden; warn about activations left plain."""
        if self.unsupported:
            names = ", ".join(f"{k} x{v}" for k, v in sorted(self.unsupported.items()))
            warnings.warn(
                f"{what}: the {self.rule.name!r} rule covers ReLU and LeakyReLU; these activations kept "
                f"their plain gradient: {names}.",
                UnsupportedActivationWarning,
                stacklevel=3,
            )
        if not self.count:
            raise RuleNotAppliedError(
                f"{what}: the {self.rule.name!r} backward rule overrode no activation: the forward pass "
                "called no ReLU or LeakyReLU inside the model (as a module/layer, an activation argument or "
                "a function call). The result would be a plain gradient, so none is returned. Use "
                "method='saliency' for the plain gradient."
            )
