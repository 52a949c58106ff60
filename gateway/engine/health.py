"""What is up: each channel's parts and each background task, for /healthz and /metrics.

A hotline that silently stops reading its SIM is worse than one that crashes: every
long-lived thread, task and worker process reports here, and a task that ends is started
again (with backoff) rather than left dead behind a green health check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from gateway.contract.logs import log_event

log = logging.getLogger(__name__)
# Restart delays of a supervised task that ended or failed: doubling, capped.
FIRST_RESTART_SECONDS, LAST_RESTART_SECONDS = 1.0, 60.0


class Reports(Protocol):
    """Something with parts that may be down: {part: up}, e.g. {"gsm:modem-1": False}."""

    def health(self) -> Mapping[str, bool]: ...


class Health:
    """The parts to ask, and the supervised tasks' own state."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Mapping[str, bool]]] = []
        self.tasks: dict[str, bool] = {}

    def watch(self, source: object) -> None:
        """Ask ``source`` too, when it reports (every channel may; not all need to)."""
        health = getattr(source, "health", None)
        if callable(health):
            self.sources.append(health)

    def report(self) -> dict[str, bool]:
        parts = dict(self.tasks)
        for source in self.sources:
            parts.update(source())
        return dict(sorted(parts.items()))

    async def supervise(
        self,
        name: str,
        work: Callable[[], Coroutine[Any, Any, None]],
        stop: asyncio.Event,
    ) -> None:
        """Run ``work()`` until ``stop``; if it ends or fails before that, log it, report
        the task down and start it again after a backoff."""
        delay = FIRST_RESTART_SECONDS
        while not stop.is_set():
            self.tasks[name] = True
            began = time.monotonic()
            try:
                await work()
                error = "ended"
            except Exception as exc:  # the task's boundary: restarted, never left dead
                log.exception("task.failed task=%s", name)
                error = repr(exc)
            if stop.is_set():
                return
            self.tasks[name] = False
            if time.monotonic() - began > LAST_RESTART_SECONDS:
                delay = FIRST_RESTART_SECONDS  # it ran well for a while: not a crash loop
            log_event(log, "task.restarting", logging.ERROR, task=name, error=error, retry_in=delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                delay = min(delay * 2, LAST_RESTART_SECONDS)
