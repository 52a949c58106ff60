"""Group commit: many callers, one writer thread, one transaction per batch.

What queues up while a transaction runs goes into the next one, so N concurrent letters
cost one commit (one fsync) instead of N, and SQLite writers no longer sleep in each
other's busy handler. A caller's future resolves only when its batch committed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R | Exception]],
        max_batch: int,
        idle_seconds: float = 1.0,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._idle = idle_seconds
        self._queue: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, item: T) -> Future[R]:
        """Queue the item; the future resolves once its batch committed (or failed)."""
        future: Future[R] = Future()
        self._queue.put((item, future))
        with self._lock:
            if self._worker is None:
                # An idle writer exits after a while; the next caller starts a new one.
                self._worker = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._worker.start()
        return future

    def _run(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self._idle)]
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            outcomes = self._write([item for item, _ in batch])
        except Exception as exc:  # the whole batch failed (e.g. the database is down)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
