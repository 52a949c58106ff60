"""Sliding-window limits kept in memory, per process (per node behind a balancer)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """At most ``limit`` hits per key in a sliding ``window`` of seconds, in this process.

    Per node: behind a balancer each node counts its own share, which is the point of a
    limit (no citizen sends ten letters an hour) rather than an exact quota.
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.hits: dict[str, deque[float]] = {}

    def blocked(self, key: str) -> bool:
        """At the limit: the next hit would be one too many."""
        return len(self._recent(key, self.clock())) >= self.limit

    def hit(self, key: str) -> None:
        self._recent(key, self.clock()).append(self.clock())

    def _recent(self, key: str, now: float) -> deque[float]:
        if len(self.hits) > 100_000:  # forget idle keys rather than grow without end
            self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
        hits = self.hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits
