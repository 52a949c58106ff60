"""Child processes the gateway keeps: they die with it and come back when they crash."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.contract.logs import log_event

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Runs in the child before exec: a gateway killed with -9 takes its children along
    (PR_SET_PDEATHSIG), so a restart finds their ports and jobs free."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def start_helper(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A program the gateway runs beside it (Kamailio, rtpengine): in its own process group
    so it can be stopped whole, its output as text on stdout, and gone when we are."""
    return subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        process_group=0,
        # A gateway killed with -9 takes it along, or it would hold its ports against the
        # restarted gateway.
        preexec_fn=die_with_parent,
    )


class WorkerPool:
    """``count`` worker processes, each restarted after a crash (with backoff).

    ``command`` is one command for all, or a function of the worker's number. With
    ``healthy``, each worker is asked every ``check_seconds``; one that fails three times
    in a row is hung, and is killed and started again.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str] | Callable[[int], Sequence[str]],
        count: int,
        healthy: Callable[[int], Awaitable[bool]] | None = None,
        check_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.command = command
        self.count = count
        self.healthy = healthy
        self.check_seconds = check_seconds
        # Each worker: running (and, with a health check, answering).
        self.up: dict[int, bool] = dict.fromkeys(range(count), False)

    def health(self) -> dict[str, bool]:
        return {f"{self.name}-{n}": up for n, up in self.up.items()}

    def _command(self, number: int) -> list[str]:
        return list(self.command(number) if callable(self.command) else self.command)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._keep(n, stop) for n in range(self.count)))

    async def _keep(self, number: int, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            child = await asyncio.create_subprocess_exec(
                *self._command(number), preexec_fn=die_with_parent
            )
            log_event(log, "worker.started", pool=self.name, number=number, pid=child.pid)
            self.up[number] = self.healthy is None
            began = time.monotonic()
            exited = asyncio.create_task(child.wait())
            stopped = asyncio.create_task(stop.wait())
            watched: list[asyncio.Task[Any]] = [exited, stopped]
            if self.healthy is not None:
                watched.append(asyncio.create_task(self._watch(number, child)))
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in watched[2:]:
                task.cancel()
            if stop.is_set():
                if child.returncode is None:
                    child.terminate()
                    await child.wait()
                exited.cancel()
                return
            stopped.cancel()
            await exited
            self.up[number] = False
            if time.monotonic() - began > 60:
                delay = 1.0  # it ran well for a while: this crash is not a crash loop
            log_event(
                log,
                "worker.exited",
                logging.WARNING,
                pool=self.name,
                number=number,
                code=child.returncode,
                restart_in=delay,
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                delay = min(delay * 2, 60.0)

    async def _watch(self, number: int, child: asyncio.subprocess.Process) -> None:
        """Returns after killing a worker that stopped answering (it is then restarted)."""
        assert self.healthy is not None
        # Counted only once it has answered: many workers starting at once on a small
        # machine take a while, and one killed for being slow to start helps nobody.
        while not await self.healthy(number):
            await asyncio.sleep(self.check_seconds)
        self.up[number] = True
        misses = 0
        while misses < 3:
            await asyncio.sleep(self.check_seconds)
            misses = 0 if await self.healthy(number) else misses + 1
            self.up[number] = misses == 0
        self.up[number] = False
        log_event(log, "worker.hung", logging.ERROR, pool=self.name, number=number, pid=child.pid)
        child.kill()
        await child.wait()
