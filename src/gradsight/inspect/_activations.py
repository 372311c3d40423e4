"""A layer's outputs over a data set, in batches, reduced per sample."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..backends import Backend, backend_for
from ..errors import GradsightError, InputError, ModelError, UnknownOptionError
from ._layers import input_of_final_dense, session

__all__ = ["Activations", "activations", "REDUCTIONS"]

REDUCTIONS = ("gap", "flatten", None)
"""Per-sample reductions :func:`activations` knows."""


@dataclass
class Activations:
    """A layer's outputs over a data set.

    Attributes
    ----------
    values:
        float32 ``(N, D)`` (``reduce="gap"`` or ``"flatten"``), or the layer's own
        ``(N, ...)`` shape in the framework's layout (``reduce=None``).
    labels:
        ``(N,)`` labels as given (from ``labels=`` or from ``(x, y)`` batches), or None.
    layer:
        The resolved layer name; for the default, the name of the final classifier
        layer whose *input* was captured, as ``"input of NAME"``.
    predictions:
        int64 ``(N,)`` argmax of the model's output (``predict=True``), or None.
    """

    values: np.ndarray
    labels: np.ndarray | None
    layer: str
    predictions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __repr__(self) -> str:
        labels = "" if self.labels is None else f", {len(np.unique(self.labels))} labels"
        return f"Activations({self.values.shape}, layer={self.layer!r}{labels})"


def _to_numpy(y: Any) -> np.ndarray:
    if hasattr(y, "detach"):  # torch, possibly on a GPU
        return y.detach().cpu().numpy()
    if hasattr(y, "numpy") and not isinstance(y, np.ndarray):  # TensorFlow
        return np.asarray(y.numpy())
    return np.asarray(y)


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "__getitem__") and not isinstance(x, (list, tuple))


def _batches(data: Any, labels: Any, batch_size: int) -> tuple[Iterator[tuple[Any, Any]], int | None]:
    """``(iterator of (x, y or None), number of batches or None)`` over any accepted ``data``."""
    if _is_array(data):
        shape = tuple(data.shape)
        if len(shape) < 2:
            raise InputError(
                f"data has shape {shape}; pass a batch (N, ...) with a leading sample axis, or an iterable of batches."
            )
        n = shape[0]
        if labels is not None and len(labels) != n:
            raise InputError(f"labels has {len(labels)} entries for {n} samples; give one label per sample.")

        def sliced() -> Iterator[tuple[Any, Any]]:
            for i in range(0, n, batch_size):
                yield data[i:i + batch_size], None if labels is None else labels[i:i + batch_size]

        return sliced(), -(-n // batch_size)
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise InputError(
            f"data must be an array or tensor (N, ...) or an iterable of batches (x or (x, y)); got {type(data).__name__}."
        )

    def iterated() -> Iterator[tuple[Any, Any]]:
        start = 0
        for k, batch in enumerate(data):
            if isinstance(batch, (tuple, list)) and len(batch) in (1, 2) and _is_array(batch[0]):
                x, y = batch[0], (batch[1] if len(batch) == 2 else None)
                if labels is not None and y is not None:
                    raise InputError("labels were given both as labels= and inside the (x, y) batches; give them once.")
            elif _is_array(batch):
                x, y = batch, None
            else:
                raise InputError(
                    f"batch {k} of data is a {type(batch).__name__}; each batch must be an array/tensor x or a pair (x, y)."
                )
            m = int(x.shape[0]) if len(x.shape) else 0
            if y is None and labels is not None:
                y = labels[start:start + m]
            start += m
            yield x, y
        if labels is not None and start != len(labels):
            raise InputError(f"labels has {len(labels)} entries for {start} samples; give one label per sample.")

    try:
        total = len(data)  # type: ignore[arg-type]
    except TypeError:  # generators; tf.data with unknown cardinality
        total = None
    return iterated(), total


def _reduce(bk: Backend, act: Any, how: str | None) -> np.ndarray:
    """One batch's activations, reduced per sample, as numpy."""
    shape = bk.ops.shape(act)
    if how is None or len(shape) <= 2:
        return bk.ops.numpy(act)
    ch = bk.activation_channel_axis() % len(shape)
    if how == "gap":  # average over every axis but the sample and channel axes
        return bk.ops.numpy(bk.ops.mean(act, tuple(a for a in range(1, len(shape)) if a != ch)))
    # flatten in channels-first order, so twin models in both layouts give the same vector
    a = np.moveaxis(bk.ops.numpy(act), ch, 1)
    return a.reshape(a.shape[0], -1)


def _capturer(bk: Backend, model: Any, layer: Any, call: int, layer_input: bool = False) -> Any:
    """``capture(run, x) -> (activation tensor, layer name)`` with ``run`` the session's backend;
    the layer is resolved once, on the first batch."""
    if layer is None:
        chosen = None

        def penultimate(run: Backend, x: Any) -> tuple[Any, str]:
            nonlocal chosen
            act, chosen = input_of_final_dense(run, model, x, chosen)
            return act, f"input of {chosen}"

        return penultimate
    ref = bk.resolve_layer(model, layer)  # an unknown name fails before any work
    if layer_input:
        if ref.auto:
            raise UnknownOptionError("layer_input=True needs a named layer (layer=NAME), not 'auto'.")
        ref = replace(ref, input=True)

    def named(run: Backend, x: Any) -> tuple[Any, str]:
        nonlocal ref
        act, name = run.activations(model, x, ref, call=call)
        name = f"input of {name}" if ref.input else name
        if ref.auto:  # keep the layer it chose for the following batches
            ref = bk.resolve_layer(model, name)
        return act, name

    return named


def activations(
    model: Any,
    data: Any,
    layer: Any = None,
    labels: Any = None,
    batch_size: int = 64,
    reduce: str | None = "gap",
    progress: bool = True,
    predict: bool = False,
    call: int = -1,
    eval_mode: bool = True,
    layer_input: bool = False,
) -> Activations:
    """A layer's outputs over a data set, computed batch by batch.

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` or a ``keras.Model``.
    data:
        Model-ready inputs: an array or tensor ``(N, ...)`` in the model's layout
        (PyTorch ``(N, C, H, W)``, Keras ``(N, H, W, C)``), sliced into batches of
        ``batch_size``; or an iterable of batches, each ``x`` or ``(x, y)`` (a
        ``DataLoader``, a ``tf.data.Dataset`` iterated eagerly, a generator).
    layer:
        ``None`` (default): the penultimate features, i.e. the *input* of the model's
        final dense layer (the last ``nn.Linear`` / ``Dense`` called in the forward
        pass). ``"auto"``: Grad-CAM's automatic layer (the last convolution stage's output).
        Otherwise a layer name or layer object, captured at its ``call``-th call.
    labels:
        Optional ``(N,)`` labels for array data (or for batches without ``y``).
    batch_size:
        Samples per forward pass for array data.
    reduce:
        ``"gap"``: average over spatial axes, giving ``(N, channels)`` (2-D outputs are
        kept); ``"flatten"``: ``(N, D)`` in channels-first order whatever the framework;
        ``None``: the layer's full output (memory grows with N).
    progress:
        Show a progress bar (on stderr).
    predict:
        Also record each sample's predicted class (argmax of the model's output; one
        more forward pass per batch).
    call:
        Which call of a layer that runs several times per forward pass (-1: the last).
    eval_mode:
        Run the model in eval mode (BatchNorm and Dropout as at inference), as
        ``explain`` does; the model's own mode is restored afterwards.
    layer_input:
        Capture the named layer's (first) input instead of its output.

    Returns
    -------
    :class:`Activations` with ``values`` float32 ``(N, D)``, ``labels``, ``layer`` and ``predictions``.

    Raises
    ------
    InputError
        Data or labels of the wrong shape or type, or batches that do not fit the model.
    LayerNotFoundError, ModelError
        An unknown layer, or a model without a final dense layer for the default.
    """
    if reduce not in REDUCTIONS:
        raise UnknownOptionError(f"reduce={reduce!r} is not valid; use one of {list(REDUCTIONS)}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UnknownOptionError(f"batch_size must be a positive int, got {batch_size!r}.")
    from tqdm import tqdm

    bk = backend_for(model)
    label_arr = None if labels is None else _to_numpy(labels)
    if label_arr is not None and label_arr.ndim != 1:
        raise InputError(f"labels must be one label per sample, shape (N,); got shape {label_arr.shape}.")
    batches, total = _batches(data, label_arr, batch_size)
    values: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    preds: list[np.ndarray] = []
    name = ""
    capture = _capturer(bk, model, layer, call, layer_input)  # an unknown layer fails before the bar appears
    bar = tqdm(batches, total=total, unit="batch", desc="activations", file=sys.stderr, disable=not progress,
               leave=False)
    with session(bk, model, eval_mode) as run, bar:
        for k, (xb, yb) in enumerate(bar):
            x = run.prepare_input(model, xb)
            shape = run.ops.shape(x)
            try:
                act, name = capture(run, x)
                out = run.forward(model, x) if predict else None
            except (GradsightError, NotImplementedError):
                raise
            except Exception as exc:  # the model refused the batch: say which and why, keep the cause
                raise InputError(
                    f"the model could not run on batch {k} of shape {shape}: {type(exc).__name__}: {exc}"
                ) from exc
            v = _reduce(bk, act, reduce)
            if values and v.shape[1:] != values[0].shape[1:]:
                raise InputError(
                    f"layer {name!r} gave shape {v.shape[1:]} per sample on batch {k} but {values[0].shape[1:]} on "
                    "the first; use reduce='gap' for inputs of varying size."
                )
            values.append(v.astype(np.float32, copy=False))
            if yb is not None:
                ys.append(_to_numpy(yb).reshape(-1))
            if out is not None:
                o = bk.ops.numpy(out)
                if o.ndim != 2 or o.shape[1] < 2:
                    raise ModelError(f"predict=True needs a (N, classes) model output to take the argmax of; got {o.shape}.")
                preds.append(o.argmax(-1))
    if not values:
        raise InputError("data holds no batches; pass at least one sample.")
    acts = np.concatenate(values)
    y = np.concatenate(ys) if ys else None
    if y is not None and len(y) != len(acts):
        raise InputError(f"got {len(y)} labels for {len(acts)} samples; give a label with every batch or none.")
    pred = np.concatenate(preds).astype(np.int64) if preds else None
    return Activations(values=acts, labels=y, layer=name, predictions=pred)
