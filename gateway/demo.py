"""Hardware stand-ins for a laptop: a modem whose device is "simulator" gets the project's
modem simulator (simulators/modem) in a child process, so `make run` works without a modem.
Production configs name real devices and never reach this code's children."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass

from gateway.contract.config import GsmConfig
from gateway.contract.contact import ChannelAdapter
from gateway.contract.errors import ConfigurationError
from gateway.contract.logs import log_event
from gateway.engine.processes import die_with_parent

log = logging.getLogger(__name__)


class SimulatedModems:
    def __init__(self, settings: GsmConfig) -> None:
        self.settings = settings
        self.children: list[subprocess.Popen[str]] = []

    def devices(self) -> dict[str, str]:
        host, _, port = self.settings.simulator_control.rpartition(":")
        devices = {}
        for number, modem in enumerate(self.settings.modems):
            if modem.device != "simulator":
                devices[modem.name] = modem.device
                continue
            control = f"{host}:{int(port) + number if int(port) else 0}"
            child = subprocess.Popen(
                [sys.executable, "-m", "simulators.modem", "--control", control],
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=die_with_parent,
            )
            self.children.append(child)
            assert child.stdout is not None
            line = child.stdout.readline()
            try:
                devices[modem.name] = json.loads(line)["device"]
            except (ValueError, KeyError) as exc:
                self.stop()
                raise ConfigurationError(
                    f"channels.gsm.modems: the modem simulator did not start: {line!r}"
                ) from exc
            log_event(
                log, "gsm.simulator", modem=modem.name, device=devices[modem.name], control=control
            )
        return devices

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
            child.wait(timeout=10)
            if child.stdout is not None:
                child.stdout.close()
        self.children.clear()

    def around(self, channel: ChannelAdapter) -> ChannelAdapter:
        return _WithSimulators(channel, self)


@dataclass
class _WithSimulators:
    channel: ChannelAdapter
    simulators: SimulatedModems

    def __getattr__(self, name: str) -> object:
        return getattr(self.channel, name)

    async def start(self) -> None:
        await self.channel.start()

    async def stop(self) -> None:
        await self.channel.stop()
        self.simulators.stop()
