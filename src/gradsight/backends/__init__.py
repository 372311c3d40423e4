"""Framework backends. See :mod:`gradsight.backends.base` for the protocol."""

from .base import Backend, Gradients, backend_for

__all__ = ["Backend", "Gradients", "backend_for"]
