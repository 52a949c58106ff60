"""Child processes the gateway keeps: they die with it and come back when they crash."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
from collections.abc import Sequence

from gateway.logs import log_event

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Runs in the child before exec: a gateway killed with -9 takes its children along
    (PR_SET_PDEATHSIG), so a restart finds their ports and jobs free."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class WorkerPool:
    """``count`` copies of one command, each restarted after a crash (with backoff)."""

    def __init__(self, name: str, command: Sequence[str], count: int) -> None:
        self.name = name
        self.command = list(command)
        self.count = count

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._keep(n, stop) for n in range(self.count)))

    async def _keep(self, number: int, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            child = await asyncio.create_subprocess_exec(*self.command, preexec_fn=die_with_parent)
            log_event(log, "worker.started", pool=self.name, number=number, pid=child.pid)
            exited = asyncio.create_task(child.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                if child.returncode is None:
                    child.terminate()
                    await child.wait()
                exited.cancel()
                return
            stopped.cancel()
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
