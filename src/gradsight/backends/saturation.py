"""The one warning both backends give for a model whose output is (log-)probabilities (framework-free)."""

from __future__ import annotations

__all__ = ["saturation_message"]


def saturation_message(what: str) -> str:
    """Text of the :class:`~gradsight.errors.SaturationWarning`; ``what`` names the final softmax."""
    return (
        f"the model's output comes from {what}: gradients of (log-)probabilities mix every class's score and "
        "saturate (near-zero or misleading maps). Pass logits=True (CLI: the default; --probabilities opts out) "
        "to explain the pre-softmax scores."
    )
