"""One re-entrant lock per model: calls on the same model from several threads run one at a time.

Every gradsight call that touches a model (``explain``, the per-method functions,
``predict``, the ``backward_rule`` block) changes the model for its duration: PyTorch
modules are put in eval mode, forward hooks capture a layer, activations are re-routed
through a backward rule; Keras layers get a wrapped ``call``. Two such calls interleaved
on one model see each other's changes (one thread's hook captures the other's forward,
one thread restores train mode while the other still runs, a rule is removed under a
running backward pass). So calls on the *same* model are serialised by the lock below,
and each thread gets exactly the result it would get alone; calls on *different*
models hold different locks and run in parallel.

The lock is re-entrant: a ``backward_rule`` block may call ``gs.explain`` on the same
model in the same thread. Another thread that calls into the model while a
``backward_rule`` block is open waits until the block ends.

Locks are kept in a :class:`weakref.WeakKeyDictionary` keyed by the model object itself
(never by ``id()``, which a new model can reuse after the old one is freed): the entry
goes when the model is garbage-collected. Objects that cannot be weakly referenced or
hashed share one fallback lock (correct, only less parallel).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["locked", "model_lock"]

_registry: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_registry_guard = threading.Lock()
_fallback = threading.RLock()


def model_lock(model: Any) -> threading.RLock:
    """The re-entrant lock that serialises gradsight calls on ``model`` (created on first use)."""
    with _registry_guard:
        try:
            lock = _registry.get(model)
            if lock is None:
                lock = _registry[model] = threading.RLock()
        except TypeError:  # not hashable or not weakly referenceable
            return _fallback
    return lock


@contextmanager
def locked(model: Any) -> Iterator[None]:
    """``with locked(model):`` holds the model's lock for the block."""
    with model_lock(model):
        yield
