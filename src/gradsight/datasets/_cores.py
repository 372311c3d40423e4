"""How the local engine shares the CPU cores between the model and its readers: tried, measured, kept.

A framework running on every core leaves the reader processes (idle work, ``_readers``)
next to nothing: its OpenMP threads spin between the small parallel regions of a batch,
so the job ends up reading most parts itself, one after the other with the model. When
reading is CPU work comparable to the model's (the generated demo set, decoding large
JPEGs for a small model), one intra-op thread fewer costs the model little (small batches
scale poorly over threads) and gives the readers a core: reading then overlaps with the
model. When the model dominates (a large network on a few cores), the thread is worth
more to the model. Which one wins depends on the model, the data, the machine and its
load, so the job measures: after the first part it runs a few parts with the user's
threads and a few with one fewer, alternating, and keeps the faster setting (tried
again every ``KEEP`` parts: the load of a shared machine changes). The user's setting
is restored when the job ends, however it ends.

The results do not depend on it (within float rounding of a different thread count, far
below the 1e-5 the job promises across engines and batch sizes).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CoreShare"]

BLOCK = 2  # parts per trial block; the first part of a block lets the readers settle, the last is timed
ROUNDS = 2  # blocks per setting (alternating: user, fewer, user, fewer)
MIN_PARTS = 16  # a shorter job keeps the user's threads (the trial, 1 + 2 * BLOCK * ROUNDS parts, would be most of it)
MARGIN = 0.95  # one thread fewer must be clearly faster
KEEP = 100  # parts run with the chosen setting before the next trial


class CoreShare:
    """Chooses the model's intra-op threads for the parts of a local job; :meth:`close` restores them.

    Parameters
    ----------
    backend: the model's backend (``compute_threads``; None there: nothing is tried).
    parts: parts this job explains.

    Call :meth:`step` after each part with its wall time (reading what the readers left,
    explaining, waiting for the writer); it sets the threads for the next part.
    """

    def __init__(self, backend: Any, parts: int) -> None:
        self.backend = backend
        self.user: int | None = backend.compute_threads()
        self.current = self.user
        self.plan: list[int] = []
        if self.user is not None and self.user > 1 and parts >= MIN_PARTS:
            fewer = self.user - 1
            self.plan = [t for _ in range(ROUNDS) for t in (self.user,) * BLOCK + (fewer,) * BLOCK]
        self.timed: dict[int, float] = {}
        self.steps = 0
        self.chosen: int | None = None if self.plan else self.user

    def _set(self, threads: int | None) -> None:
        if threads is not None and threads != self.current:
            self.backend.compute_threads(threads)
            self.current = threads

    def step(self, seconds: float) -> None:
        """Part ``steps`` took ``seconds``; set the threads for the next one."""
        if not self.plan:
            return
        cycle = len(self.plan) + KEEP
        k = self.steps - 1  # the first part (read here while the readers start) is not part of a trial
        if k >= 0 and k % cycle < len(self.plan) and k % cycle % BLOCK == BLOCK - 1:
            self.timed[self.plan[k % cycle]] = self.timed.get(self.plan[k % cycle], 0.0) + seconds
        self.steps += 1
        nxt = (k + 1) % cycle
        if nxt < len(self.plan):
            if nxt == 0:
                self.timed = {}  # a new trial: the load may have changed since the last one
            self._set(self.plan[nxt])
        elif nxt == len(self.plan):  # the trial is over: keep the faster setting
            user, fewer = self.plan[0], self.plan[BLOCK]
            self.chosen = fewer if self.timed[fewer] < MARGIN * self.timed[user] else user
            self._set(self.chosen)

    def close(self) -> None:
        """The user's threads again."""
        self._set(self.user)

    def __enter__(self) -> CoreShare:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
