"""Backward rules for rectifiers, as data shared by every backend.

A rectifier ``f`` (ReLU, LeakyReLU, Keras' generalised ReLU) is described to a rule by
its local derivative ``d = f'(x)`` at the forward input and by ``f`` itself. Given the
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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UnknownMethodError, close_matches

__all__ = ["Rule", "RULES", "get_rule"]

Tensor = Any


@dataclass(frozen=True)
class Rule:
    """A backward rule for rectifiers.

    Parameters
    ----------
    name:
        ``"plain"``, ``"deconvnet"`` or ``"guided"``.
    backward:
        ``backward(g, d, f, relu)``: ``g`` upstream gradient, ``d`` the activation's local
        derivative at its input, ``f`` the activation applied elementwise, ``relu`` a
        plain ReLU of the same framework. Returns the gradient for the activation's input.
    """

    name: str
    backward: Callable[[Tensor, Tensor, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]], Tensor]


def _plain(g: Tensor, d: Tensor, f: Callable, relu: Callable) -> Tensor:
    return g * d


def _deconvnet(g: Tensor, d: Tensor, f: Callable, relu: Callable) -> Tensor:
    return f(g)


def _guided(g: Tensor, d: Tensor, f: Callable, relu: Callable) -> Tensor:
    return relu(g) * d


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
