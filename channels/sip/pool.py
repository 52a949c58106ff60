"""The phone channel as `hotline serve` runs it: the SIP worker processes, kept alive and
health-checked, and Kamailio in front of them when there is more than one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable
from typing import Protocol

from channels.sip.kamailio import Kamailio
from channels.sip.rtpengine import RtpEngine, missing_parts
from gateway.contract.config import Config, SipConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.logs import log_event
from gateway.engine.processes import WorkerPool

log = logging.getLogger(__name__)
HELPER_CHECK_SECONDS = 1.0


class Helper(Protocol):
    """A program the channel runs beside its workers (Kamailio, rtpengine)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...


def worker_addresses(config: Config) -> list[tuple[str, int]]:
    """Where this node's workers listen: the only one on the channel's own address, or each
    behind Kamailio on ``worker_host`` (loopback unless other nodes' Kamailio front it)."""
    settings = config.channels.sip
    if settings.workers == 1:
        return [(settings.host, settings.port)]
    host = settings.worker_host
    return [(host, settings.worker_base_port + n) for n in range(settings.workers)]


async def options_ping(host: str, port: int, timeout: float = 2.0) -> bool:
    """A SIP OPTIONS over UDP answered at all: the worker's PJSIP thread is alive."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    # worker_host may be an IPv6 address: bracketed in a SIP URI (RFC 3261 §19.1.1).
    v6 = ":" in host
    target = f"[{host}]:{port}" if v6 else f"{host}:{port}"
    request = (
        f"OPTIONS sip:{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:health@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{target}>\r\n"
        f"Call-ID: {secrets.token_hex(12)}@health\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )

    def ping() -> bool:
        with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(request.encode(), (host, port))
            with contextlib.suppress(OSError):
                return s.recv(4096).startswith(b"SIP/2.0 ")
        return False

    return await asyncio.to_thread(ping)


class SipChannel:
    def __init__(self, config: Config, worker_command: Callable[[int], list[str]]) -> None:
        """``worker_command`` starts worker N: a process the gateway assembles (its intake
        and callback list), since a worker stores its calls' letters itself."""
        self.config = config
        self.settings = config.channels.sip
        self.addresses = worker_addresses(config)
        self.pool = WorkerPool("sip", worker_command, self.settings.workers, healthy=self._healthy)
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.kamailio: Kamailio | None = None
        self.rtpengine: RtpEngine | None = None
        self.watches: list[asyncio.Task[None]] = []

    async def _healthy(self, number: int) -> bool:
        host, port = self.addresses[number]
        return await options_ping("127.0.0.1" if host in ("0.0.0.0", "") else host, port)

    def _answering(self) -> set[int]:
        return {number for number, up in self.pool.up.items() if up}

    def health(self) -> dict[str, bool]:
        parts = self.pool.health()
        if self.kamailio is not None:
            parts["kamailio"] = self.kamailio.alive()
        if self.rtpengine is not None:
            parts["rtpengine"] = self.rtpengine.alive()
        return parts

    async def start(self) -> None:
        self.task = asyncio.create_task(self.pool.run(self.stopping), name="sip-workers")
        if self.settings.workers > 1:
            front = await self._webcall()
            kamailio = Kamailio(
                front,
                self.addresses,
                seats=self.config.seats,
                database_url=self.config.database.url,
                answering=self._answering,
            )
            await asyncio.to_thread(kamailio.start)
            self.kamailio = kamailio
            self._keep("kamailio", kamailio)
            log_event(
                log,
                "sip.front",
                host=self.settings.host,
                port=self.settings.port,
                workers=self.settings.workers,
                peer_workers=len(self.settings.kamailio.peer_workers),
            )

    async def _webcall(self) -> SipConfig:
        """rtpengine started for web calls (channels.sip.webcall); the settings Kamailio
        gets, web calls off when this machine lacks a part (the log says which)."""
        settings = self.settings
        if not settings.webcall.enabled:
            return settings
        missing = missing_parts(settings)
        if missing:
            log_event(
                log,
                "sip.webcall.off",
                logging.WARNING,
                reason="missing Debian packages: " + " ".join(missing),
            )
            off = settings.webcall.model_copy(update={"enabled": False})
            return settings.model_copy(update={"webcall": off})
        rtpengine = RtpEngine(settings)
        await asyncio.to_thread(rtpengine.start)
        self.rtpengine = rtpengine
        self._keep("rtpengine", rtpengine)
        webcall = settings.webcall
        log_event(log, "sip.webcall", ws_port=webcall.ws_port, number=webcall.number)
        return settings

    def _keep(self, name: str, helper: Helper) -> None:
        """``helper`` started again should it die: Kamailio's dying ends every call and
        signs every seat's phone off until it registers again; rtpengine's, the audio of
        the web calls it relayed. The next calls are carried (health shows it down
        meanwhile)."""

        async def keep() -> None:
            while not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), HELPER_CHECK_SECONDS)
                if self.stopping.is_set() or helper.alive():
                    continue
                log_event(log, f"{name}.died", logging.ERROR)
                await asyncio.to_thread(helper.stop)  # reaped, with what it left behind
                try:
                    await asyncio.to_thread(helper.start)
                except (ConfigurationError, OSError):  # tried again at the next check
                    log.exception(f"{name}.restart_failed")

        self.watches.append(asyncio.create_task(keep(), name=name))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.watches)
        if self.task is not None:
            await self.task
        if self.kamailio is not None:
            await asyncio.to_thread(self.kamailio.stop)
        if self.rtpengine is not None:
            await asyncio.to_thread(self.rtpengine.stop)
