"""Shared parameter text of the method functions' docstrings in :mod:`gradsight.api`.

``@doc`` fills ``{common}``, ``{session}`` and ``{layer}`` in a docstring, so that
``help(gs.gradcam)`` shows every parameter while each is written once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["doc"]

_COMMON = """model : torch.nn.Module or keras.Model
        The model to explain; left exactly as it was.
    x : array or tensor (N, ...)
        A batch in the model's own layout (PyTorch (N, C, H, W), Keras (N, H, W, C)),
        preprocessed as the model expects. Never modified.
    target : None, int, sequence of N ints, callable or gradsight.targets.Target
        What to explain: None each sample's top-1 class; ``TopK(k)`` adds a k axis
        after the batch axis to every result array."""

_SESSION = """output : int, str or tuple, optional
        For models with several outputs: the index or key of the one to explain.
    eval_mode : bool, default True
        Run the model in eval mode (PyTorch) / with ``training=False`` (Keras).
    logits : bool, default False
        Explain the scores before a final softmax / log-softmax (Keras layer or activation;
        PyTorch module or functional call).
    **options
        Nothing else: an unknown option raises UnknownOptionError naming the valid ones.

    Returns
    -------
    Explanation"""

_LAYER = """layer : str, layer object, a list of them, or None
        The layer whose output is weighed (PyTorch: dotted name from
        ``named_modules()``; Keras: name or ``outer/inner`` path). None: the last
        convolution stage's output. A list: each layer's map resized to the input,
        min-max normalised, then averaged.
    call : int, default -1
        Which call of a layer that runs several times per forward pass.
    gate : None or "guided"
        "guided" keeps the gradients only where the activation and the gradient are
        positive before pooling.
    tokens : gradsight.Tokens, optional
        Transformer token layers: prefix and grid, found from the model when not given.
    layer_input : bool, default False
        Weigh the layer's (first) input instead of its output."""


def doc(fn: Any) -> Any:
    """Fill the shared parameter text into ``fn``'s docstring."""
    fn.__doc__ = fn.__doc__.replace("{common}", _COMMON).replace("{session}", _SESSION).replace("{layer}", _LAYER)
    return fn
