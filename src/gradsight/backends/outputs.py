"""Output selection: which of a model's outputs (tuple, list, dict, namedtuple, dataclass or
Hugging Face ``ModelOutput``) a call explains.

Framework-free; used by the gradient pipeline and by every backend's forward pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ModelError, OutputChosenWarning, TargetError, close_matches, warn

__all__ = ["select_output", "check_tensors", "as_container"]


def _is_model_output(outputs: Any) -> bool:
    # Hugging Face ModelOutput, by duck typing (transformers is never imported): an ordered
    # mapping that also gives its fields as attributes, e.g. .logits, .attentions.
    return isinstance(outputs, Mapping) and hasattr(outputs, "to_tuple")


def as_container(outputs: Any) -> Any:
    """``outputs`` as a tuple, list or dict (namedtuples and dataclasses become dicts of their
    fields, ``None`` fields dropped); anything else (one tensor) unchanged."""
    if dataclasses.is_dataclass(outputs) and not isinstance(outputs, (type, Mapping)):
        fields = {f.name: getattr(outputs, f.name) for f in dataclasses.fields(outputs)}
        return {k: v for k, v in fields.items() if v is not None}
    if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):  # a namedtuple
        return {k: v for k, v in zip(outputs._fields, outputs) if v is not None}
    if isinstance(outputs, Mapping):
        return {k: v for k, v in outputs.items() if v is not None}
    return outputs


def _describe(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return ", ".join(f"{k!r}: {tuple(getattr(v, 'shape', ()))}" for k, v in outputs.items())
    return ", ".join(f"[{i}]: {tuple(getattr(v, 'shape', ()))}" for i, v in enumerate(outputs))


def select_output(outputs: Any, output: int | str | Sequence[int | str] | None) -> Any:
    """Pick one output of a model that returns several (tuple, list, dict, namedtuple,
    dataclass, Hugging Face ``ModelOutput``).

    ``output`` is an index or key (a field name of a namedtuple or dataclass), or a
    tuple/list of them (then a list of the chosen outputs is returned). A ``ModelOutput``
    with ``logits`` gives them when ``output`` is None, with an :class:`OutputChosenWarning`.
    Raises :class:`TargetError` listing the outputs when ``output`` is needed and missing
    or does not name one of them.
    """
    hf = _is_model_output(outputs)
    outputs = as_container(outputs)
    if hf and output is None and "logits" in outputs:
        if len(outputs) > 1:
            warn(
                f"the model returns a ModelOutput with {', '.join(map(repr, outputs))}; explaining 'logits' "
                "(pass output=KEY to choose another).",
                OutputChosenWarning,
            )
        output = "logits"
    several = isinstance(outputs, (tuple, list, Mapping))
    if isinstance(output, (tuple, list)):  # several outputs at once, e.g. every scale of a detector
        if not several:
            raise TargetError(f"output={output!r} selects several outputs but the model returns a single output.")
        return [select_output(outputs, o) for o in output]
    if not several:
        if output not in (None, 0):
            raise TargetError(f"output={output!r} was given but the model returns a single output.")
        return outputs
    if isinstance(outputs, Mapping):
        if output is None and len(outputs) == 1:
            return next(iter(outputs.values()))
        if output is None:
            raise TargetError(f"the model returns several outputs ({_describe(outputs)}); choose one with output=KEY.")
        if isinstance(output, int) and not isinstance(output, bool) and output not in outputs:
            keys = list(outputs)  # a ModelOutput, namedtuple or dataclass by position
            if -len(keys) <= output < len(keys):
                return outputs[keys[output]]
        if output not in outputs:
            raise TargetError(
                f"output={output!r} is not one of the model's outputs ({_describe(outputs)})."
                + close_matches(str(output), [str(k) for k in outputs])
            )
        return outputs[output]
    if len(outputs) == 1 and output is None:
        return outputs[0]
    if output is None:
        raise TargetError(f"the model returns {len(outputs)} outputs ({_describe(outputs)}); choose one with output=INDEX.")
    if not isinstance(output, int) or not -len(outputs) <= output < len(outputs):
        raise TargetError(f"output={output!r} is out of range for the model's outputs ({_describe(outputs)}).")
    return outputs[output]


def check_tensors(outputs: Any, is_tensor: Any) -> Any:
    """The selected output: a tensor, or a list of tensors when ``output=`` named several."""
    for o in outputs if isinstance(outputs, list) else [outputs]:
        if not is_tensor(o):
            raise ModelError(f"the model output is a {type(o).__name__}, not a tensor; use output= to pick one.")
    return outputs
