"""The public entry points: :func:`explain`, :func:`predict`, :func:`backward_rule`, and one
function per method with its real parameters (``gs.gradcam(model, x, layer=..., gate=...)``;
a test checks that every method has one, taking exactly its options). Those of the later
methods (the CAM family, Integrated Gradients, input x gradient) are in :mod:`.api_methods`,
the transformer ones in :mod:`.api_transformers`, one layer above; ``gradsight`` exports all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import _checks
from ._api_docs import doc
from ._locks import locked
from .backends import backend_for
from .explanation import Explanation
from .methods import _several, get_method
from .methods._tokens import Tokens
from .rules import Rule, get_rule
from .targets import as_target

__all__ = [
    "explain", "predict", "backward_rule", "saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam",
    "guided_gradcam",
]  # fmt: skip


def explain(
    model: Any,
    x: Any,
    method: str = "gradcam",
    target: Any = None,
    layer: Any = None,
    *,
    output: int | str | tuple[int | str, ...] | None = None,
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
        expects. Never modified. Several inputs: a tuple (or list, or dict) of float batches
        with one N, called as ``model(*x)`` (PyTorch; a dict: ``model(**x)``) or ``model(list(x))``
        (Keras; a dict as it is); each is explained (see :mod:`gradsight.methods._several`).
    method:
        A name in ``gs.METHODS``: ``saliency``, ``smoothgrad``, ``deconvnet``, ``guided_backprop``,
        ``gradcam``, ``guided_gradcam``, ``gradcam_plus_plus``, ``xgradcam``, ``layercam``,
        ``hirescam``, ``eigencam``, ``scorecam``, ``integrated_gradients``, ``input_x_gradient``.
    target:
        None (each sample's top-1 class), an int, N ints, a callable
        ``outputs -> (N,)`` scores, or a :class:`gradsight.targets.Target`:
        ``TopK(k)`` (k explanations per image: result arrays gain a k axis after the
        batch axis), ``Segmentation``, ``Detection`` (YOLO-style heads).
    layer:
        Grad-CAM methods: a layer name (PyTorch: dotted, from ``named_modules()``), a
        layer object, or None/"auto": the last convolution stage's output (backends/autolayer.py;
        a ViT: the last attention's input). CAM methods also take a list (maps upsampled,
        min-max normalised, averaged).
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
        Models whose output comes from a final softmax / log-softmax: explain the scores
        before it, which do not saturate. Keras: ``Dense(..., activation="softmax")``,
        ``Activation("softmax")``, ``Softmax()``; PyTorch: ``nn.Softmax``/``nn.LogSoftmax``
        or ``F.softmax``/``F.log_softmax`` (or ``torch.``/``Tensor.`` forms) as the
        forward's last step. Such models get a ``SaturationWarning`` without it; other
        models raise :class:`~gradsight.errors.ModelError` with it.
    **options:
        The method's options (e.g. ``samples``, ``noise``, ``batch_size``, ``seed``,
        ``base`` for smoothgrad; ``call``, ``gate`` for Grad-CAM). Any method also takes
        ``forward_args`` / ``forward_kwargs``: passed to the model as they are, not explained.

    Returns
    -------
    Explanation
        With several inputs, gradient methods give ``attributions`` in ``x``'s structure (one
        array per input) and ``heatmaps`` likewise (None for inputs that are not images); CAM
        methods keep their one map at the layer, resized to the first image-shaped input.

    The model is left exactly as it was, after success and after any error. Threads may call
    this on one model at once: calls on one model run one at a time (:mod:`gradsight._locks`),
    different models in parallel. Bad input (NaN/inf, an empty batch, ...) is an error naming
    the samples (:mod:`gradsight._checks`).
    """
    extra = (tuple(options.pop("forward_args", ())), options.pop("forward_kwargs", None))
    spec = get_method(method)
    spec.check_options(dict(options, **({"layer": layer} if layer is not None else {})))
    if layer is not None:
        options["layer"] = layer
    tgt = as_target(_checks.target(target))  # numpy / tensor targets like lists
    output = tgt.output_for(output)  # a detector's target may need every scale
    bk = backend_for(model)
    several = _several.before(model, x, spec.name, options)  # 1-D, empty, meta device; x a tuple: batch sizes
    with locked(model), bk.session(model, eval_mode, logits, *extra) as run:  # one call per model at a time
        if several:  # packed into one (N, D) tensor that the session's model calls cut apart
            run, xt = _several.prepare(run, model, x, spec.name, options)
        else:
            xt = run.prepare_input(model, x)
            _checks.prepared(run, model, xt, spec.name, options)  # NaN/inf, channels, constant images
        result = spec.fn(run, model, xt, tgt, output=output, **options)
        _checks.after(spec.name, result)  # non-finite outputs, 1x1 Grad-CAM layer
        result = _several.split(run, model, result)  # several inputs: one attribution per input
        layout = run.input_layout(model)  # in the session: answered from its one walk of the model
    return Explanation(
        method=spec.name,
        attributions=result.attributions,
        heatmaps=result.heatmaps,
        targets=result.targets,
        scores=result.scores,
        outputs=result.outputs,
        layer=result.layer,
        layout=layout,
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
    forward_args: tuple[Any, ...] = (), forward_kwargs: Any = None,
) -> np.ndarray:
    """The model's (selected) output for the batch ``x`` as float32 numpy, forward only.

    Features built on the api (evaluation, data-set jobs, the viewer) call this instead of
    reaching into a backend. ``x`` is in the model's layout, already preprocessed; with
    ``batch_size`` it goes through the model in chunks of that many samples (results are
    concatenated along the batch axis). ``output``, ``eval_mode`` and ``logits`` as in
    :func:`explain`, as are ``forward_args`` / ``forward_kwargs`` and several inputs (``x`` a tuple,
    list or dict of batches with one N). The model is left exactly as it was.
    """
    bk = backend_for(model)
    several = _several.before(model, x, allow_empty=True)
    parts: list[np.ndarray] = []
    with locked(model), bk.session(model, eval_mode, logits, tuple(forward_args), forward_kwargs) as run:
        if several:  # one (N, D) tensor, cut in chunks
            run, x = _several.prepare(run, model, x)
        n = len(x)
        step = n if not batch_size or batch_size >= n else int(batch_size)
        for start in range(0, max(n, 1), max(step, 1)):
            xt = x[start : start + step] if several else run.prepare_input(model, x[start : start + step])
            out = run.forward(model, xt, output=output)
            parts.append(np.asarray(bk.ops.numpy(out), dtype=np.float32))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


@doc
def saliency(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Vanilla gradient saliency (Simonyan et al. 2014): d score / d input.

    ``attributions`` (N, *input) signed; ``heatmaps`` (N, H, W) in [0, 1] (max over
    channels of the absolute gradient, per sample).

    Parameters
    ----------
    {common}
    {session}
    """
    return explain(model, x, "saliency", target, output=output, eval_mode=eval_mode, logits=logits, **options)


@doc
def smoothgrad(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    samples: int = 50,
    noise: float = 0.15,
    batch_size: int = 32,
    seed: int | None = None,
    base: str = "saliency",
    aggregate: str = "mean",
    base_options: dict[str, Any] | None = None,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """SmoothGrad (Smilkov et al. 2017): ``base`` averaged over noisy copies of the input.

    Parameters
    ----------
    {common}
    samples : int, default 50
        Noisy copies per input.
    noise : float, default 0.15
        Noise standard deviation as a fraction of each input's value range (max - min).
    batch_size : int, default 32
        Rows per backward pass (memory does not grow with ``samples``).
    seed : int, optional
        Seed of the noise; with it results do not depend on ``batch_size`` or the framework.
    base : {"saliency", "deconvnet", "guided_backprop", "input_x_gradient", "integrated_gradients"}
        The input-space method averaged.
    aggregate : {"mean", "mean_square", "var"}
        SmoothGrad, SmoothGrad^2 (mean of squares), VarGrad (population variance).
    base_options : dict, optional
        ``base="integrated_gradients"`` only: its ``steps``, ``rule``, ``baseline``, ...
    {session}
    """
    return explain(
        model, x, "smoothgrad", target, output=output, eval_mode=eval_mode, logits=logits,
        samples=samples, noise=noise, batch_size=batch_size, seed=seed, base=base, aggregate=aggregate,
        base_options=base_options, **options
    )


@doc
def deconvnet(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Deconvnet (Zeiler & Fergus 2014): every ReLU/LeakyReLU passes ``f(upstream gradient)`` back.

    Parameters
    ----------
    {common}
    {session}
    """
    return explain(model, x, "deconvnet", target, output=output, eval_mode=eval_mode, logits=logits, **options)


@doc
def guided_backprop(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Guided backpropagation (Springenberg et al. 2015): rectifiers pass ``relu(g) * f'(x)`` back.

    Parameters
    ----------
    {common}
    {session}
    """
    return explain(
        model, x, "guided_backprop", target, output=output, eval_mode=eval_mode, logits=logits, **options
    )


@doc
def gradcam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    gate: str | None = None,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k alpha_k A_k), alpha_k the mean gradient of channel k.

    ``attributions`` (N, h, w) at the layer's resolution, unnormalised; ``heatmaps``
    (N, H, W) resized to the input and scaled to [0, 1].

    Parameters
    ----------
    {common}
    {layer}
    guided : bool, default False
        Guided backprop times the map resized to the input (guided Grad-CAM).
    {session}
    """
    return explain(
        model, x, "gradcam", target, layer, output=output, eval_mode=eval_mode, logits=logits, call=call, gate=gate,
        guided=guided, tokens=tokens, layer_input=layer_input, **options,
    )


@doc
def guided_gradcam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: Any = None,
    call: int = -1,
    gate: str | None = None,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: int | str | tuple[int | str, ...] | None = None,
    eval_mode: bool = True,
    logits: bool = False,
    **options: Any,
) -> Explanation:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times the upsampled Grad-CAM map.

    One forward pass; ``extras["cam"]`` holds the Grad-CAM map at the layer.

    Parameters
    ----------
    {common}
    {layer}
    {session}
    """
    return explain(
        model, x, "guided_gradcam", target, layer, output=output, eval_mode=eval_mode, logits=logits, call=call,
        gate=gate, tokens=tokens, layer_input=layer_input, **options
    )


@contextmanager
def backward_rule(model: Any, rule: str | Rule) -> Iterator[Any]:
    """Make every ReLU / LeakyReLU inside ``model`` back-propagate by ``rule`` in a ``with`` block.

    ``rule`` is ``"guided"`` (guided backpropagation), ``"deconvnet"`` or ``"plain"``.
    Works for activation modules, functional calls and reused modules (PyTorch), and for
    activation arguments, activation layers and op calls in custom layers (Keras). Your
    own gradient code (``torch.autograd.grad``, ``loss.backward()``,
    ``tf.GradientTape``) inside the block sees the rule. On exit the model is as
    before; if the block ran a forward pass that overrode no activation,
    :class:`~gradsight.errors.RuleNotAppliedError` is raised. gradsight methods called in
    the block take its rule, except those with a rule of their own (guided backprop,
    deconvnet, guided Grad-CAM): the innermost rule wins.

    Example
    -------
    >>> with gs.backward_rule(model, "guided"):
    ...     x.requires_grad_(True)
    ...     model(x)[:, 3].sum().backward()
    """
    r = get_rule(rule)
    with locked(model), backend_for(model).backward_rule(model, r) as report:
        yield report
