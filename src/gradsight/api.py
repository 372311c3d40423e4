"""The public entry points: :func:`explain`, one function per method, :func:`backward_rule`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .backends.base import backend_for
from .explanation import Explanation
from .methods import METHODS, get_method
from .rules import Rule, get_rule
from .targets import as_target

__all__ = [
    "explain",
    "predict",
    "backward_rule",
    "saliency",
    "smoothgrad",
    "deconvnet",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
    "gradcam_plus_plus",
    "xgradcam",
    "layercam",
    "hirescam",
    "eigencam",
    "scorecam",
    "integrated_gradients",
    "input_x_gradient",
]


def explain(
    model: Any,
    x: Any,
    method: str = "gradcam",
    target: Any = None,
    layer: Any = None,
    *,
    output: int | str | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Explain ``model``'s decisions on the batch ``x`` with ``method``.

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` or a ``keras.Model``.
    x:
        A batch in the model's own layout (PyTorch: (N, C, H, W); Keras: (N, H, W, C)),
        as a framework tensor or a numpy array, already preprocessed as the model
        expects. Never modified.
    method:
        One of ``saliency``, ``smoothgrad``, ``deconvnet``, ``guided_backprop``,
        ``gradcam``, ``guided_gradcam``, ``gradcam_plus_plus``, ``xgradcam``, ``layercam``,
        ``hirescam``, ``eigencam``, ``scorecam``, ``integrated_gradients``,
        ``input_x_gradient`` (``gs.METHODS`` lists them with their options).
    target:
        None (each sample's top-1 class), an int, N ints, a callable
        ``outputs -> (N,)`` scores, or a :class:`gradsight.targets.Target`:
        ``TopK(k)`` (k explanations per image: result arrays gain a k axis after the
        batch axis), ``Segmentation``, ``Detection`` (YOLO-style heads).
    layer:
        Grad-CAM methods: a layer name (PyTorch: dotted, from ``named_modules()``), a
        layer object, or None/"auto" for the last layer with a 4-D spatial output. CAM
        methods also take a list of them (maps upsampled, min-max normalised, averaged).
    output:
        For models with several outputs: the index or key of the one to explain, or a
        tuple of them (a ``Detection`` target over several scales selects them all).
    eval_mode:
        The model runs in eval mode during the explanation (so BatchNorm and dropout
        behave deterministically and running statistics are untouched); every
        module's mode is restored afterwards. ``False`` keeps the current modes.
        Keras: ``True`` calls the model with ``training=False``; ``False`` with
        ``training=None`` (each layer's own default).
    logits:
        Keras models whose last layer applies a softmax (``Dense(..., activation="softmax")``,
        ``Activation("softmax")``, ``Softmax()``): explain the pre-softmax scores, which
        do not saturate. Such models get a ``SaturationWarning`` without it. PyTorch
        models raise :class:`~gradsight.errors.ModelError` (remove the softmax instead).
    **options:
        The method's options (e.g. ``samples``, ``noise``, ``batch_size``, ``seed``,
        ``base`` for smoothgrad; ``call``, ``gate`` for Grad-CAM).

    Returns
    -------
    Explanation

    The model is left exactly as it was, after success and after any error.
    """
    spec = get_method(method)
    spec.check_options(dict(options, **({"layer": layer} if layer is not None else {})))
    if layer is not None:
        options["layer"] = layer
    tgt = as_target(target)
    output = tgt.output_for(output)  # a detector's target may need every scale
    bk = backend_for(model)
    with bk.session(model, eval_mode=eval_mode, logits=logits):
        xt = bk.prepare_input(model, x)
        result = spec.fn(bk, model, xt, tgt, output=output, **options)
    return Explanation(
        method=spec.name,
        attributions=result.attributions,
        heatmaps=result.heatmaps,
        targets=result.targets,
        scores=result.scores,
        outputs=result.outputs,
        layer=result.layer,
        layout=bk.input_layout(model),
        options={k: v for k, v in options.items() if k != "layer"},
        extras=result.extras,
    )


def predict(
    model: Any,
    x: Any,
    *,
    output: int | str | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    batch_size: int | None = None,
) -> np.ndarray:
    """The model's (selected) output for the batch ``x`` as float32 numpy, forward only.

    Features built on the api (evaluation, data-set jobs, the viewer) call this instead of
    reaching into a backend. ``x`` is in the model's layout, already preprocessed; with
    ``batch_size`` it goes through the model in chunks of that many samples (results are
    concatenated along the batch axis). ``output``, ``eval_mode`` and ``logits`` as in
    :func:`explain`. The model is left exactly as it was.
    """
    bk = backend_for(model)
    n = len(x)
    step = n if not batch_size or batch_size >= n else int(batch_size)
    parts: list[np.ndarray] = []
    with bk.session(model, eval_mode=eval_mode, logits=logits):
        for start in range(0, max(n, 1), max(step, 1)):
            xt = bk.prepare_input(model, x[start : start + step])
            out = bk.forward(model, xt, output=output)
            parts.append(np.asarray(bk.ops.numpy(out), dtype=np.float32))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _method_function(name: str) -> Any:
    def run(model: Any, x: Any, target: Any = None, **options: Any) -> Explanation:
        return explain(model, x, method=name, target=target, **options)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = (
        f"``explain(model, x, method={name!r}, target=target, **options)``. "
        f"Options: {', '.join(METHODS[name].options)}. Reference: {METHODS[name].reference}."
    )
    return run


saliency = _method_function("saliency")
smoothgrad = _method_function("smoothgrad")
deconvnet = _method_function("deconvnet")
guided_backprop = _method_function("guided_backprop")
gradcam = _method_function("gradcam")
guided_gradcam = _method_function("guided_gradcam")
gradcam_plus_plus = _method_function("gradcam_plus_plus")
xgradcam = _method_function("xgradcam")
layercam = _method_function("layercam")
hirescam = _method_function("hirescam")
eigencam = _method_function("eigencam")
scorecam = _method_function("scorecam")
integrated_gradients = _method_function("integrated_gradients")
input_x_gradient = _method_function("input_x_gradient")


@contextmanager
def backward_rule(model: Any, rule: str | Rule) -> Iterator[Any]:
    """Make every ReLU / LeakyReLU inside ``model`` back-propagate by ``rule`` in a ``with`` block.

    ``rule`` is ``"guided"`` (guided backpropagation), ``"deconvnet"`` or ``"plain"``.
    Works for activation modules, functional calls and reused modules (PyTorch), and for
    activation arguments, activation layers and op calls in custom layers (Keras). Your
    own gradient code (``torch.autograd.grad``, ``loss.backward()``,
    ``tf.GradientTape``) inside the block sees the rule. On exit the model is as
    before; if the block ran a forward pass that overrode no activation,
    :class:`~gradsight.errors.RuleNotAppliedError` is raised.

    Example
    -------
    >>> with gs.backward_rule(model, "guided"):
    ...     x.requires_grad_(True)
    ...     model(x)[:, 3].sum().backward()
    """
    r = get_rule(rule)
    with backend_for(model).backward_rule(model, r) as report:
        yield report
