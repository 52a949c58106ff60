"""SMS through a pool of GSM modems: each modem a worker thread, letters through intake."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from typing import Any

from channels.gsm.worker import ModemWorker, ReportDelivery
from gateway.contract.config import GsmConfig
from gateway.contract.contact import Accept
from gateway.contract.errors import TransientError

log = logging.getLogger(__name__)


class GsmChannel:
    def __init__(
        self,
        settings: GsmConfig,
        accept: Accept,
        devices: Mapping[str, str],
        report: ReportDelivery | None = None,
    ) -> None:
        """``devices`` maps each modem's name to the serial device to open (the config's,
        or a simulator's pty)."""
        self.settings = settings
        self.accept = accept
        self.devices = devices
        self.report = report
        self.workers: list[ModemWorker] = []
        self._turn = itertools.count()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for modem in self.settings.modems:
            worker = ModemWorker(
                modem, self.settings, self.devices[modem.name], loop, self.accept, self.report
            )
            worker.start()
            self.workers.append(worker)

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
        self.workers.clear()

    def health(self) -> dict[str, bool]:
        return {f"gsm:{w.name}": w.up for w in self.workers}

    def quarantined(self) -> dict[str, int]:
        return {f"gsm:{w.name}": w.set_aside for w in self.workers}

    def status(self) -> list[tuple[str, bool, int, int]]:
        """(modem, connected, signal, failed connects in a row) for the operator's metrics."""
        return [(w.name, w.connected.is_set(), w.signal, w.failures) for w in self.workers]

    def deliver(
        self, destination: str, payload: Mapping[str, Any], message_id: str
    ) -> dict[str, Any]:
        """Send an outbox SMS through the next connected, healthy modem (round robin);
        blocks the calling job thread until the modem answered."""
        ready = [w for w in self.workers if w.healthy and w.connected.is_set()]
        if not ready:
            raise TransientError("no GSM modem is connected")
        worker = ready[next(self._turn) % len(ready)]
        references = worker.send(destination, str(payload["body"])).result(
            timeout=self.settings.command_timeout_seconds * 12
        )
        return {"modem": worker.name, "references": references}
