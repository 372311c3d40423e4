"""A bounded least-recently-used map: the viewer's caches, so memory levels off however many requests come."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used map, bounded in entries and optionally in bytes.

    ``weigh(value)`` gives an entry's size for ``budget`` (bytes); the newest entry is always kept.
    """

    def __init__(self, size: int, budget: int | None = None, weigh: Callable[[V], int] | None = None) -> None:
        self.size = max(int(size), 1)
        self.budget, self.weigh = budget, weigh
        self.bytes = 0
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def _weight(self, value: V) -> int:
        return self.weigh(value) if self.weigh is not None else 0

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if key in self._data:
                self.bytes -= self._weight(self._data.pop(key))
            self._data[key] = value
            self.bytes += self._weight(value)
            while len(self._data) > self.size or (
                self.budget is not None and self.bytes > self.budget and len(self._data) > 1
            ):
                _, old = self._data.popitem(last=False)
                self.bytes -= self._weight(old)

    def __len__(self) -> int:
        return len(self._data)
