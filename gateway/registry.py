"""The channels, each wired the same way: config.yaml's `channels.<name>.enabled` turns one
on, and its factory here builds it from what the gateway gives (Wiring) into what it offers
back (Channel). Adding a channel is one factory here; nothing registers itself on import."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Mount

from gateway.contract.config import Config
from gateway.contract.contact import ChannelAdapter
from gateway.engine.http import ErrorPage
from gateway.engine.intake import Intake
from gateway.engine.metrics import ModemStatus
from gateway.engine.outbox import DeliveryReports, Sender


@dataclass
class Wiring:
    """What a channel is built from."""

    config: Config
    intake: Intake
    reports: DeliveryReports  # delivery reports for the outbox's messages
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]  # read-only sessions, for pages that only look
    clock: Callable[[], datetime]
    # The file the gateway was started with, for the worker processes a channel runs.
    config_path: Path | None = None


@dataclass
class Channel:
    """What a channel offers the gateway; each part is optional."""

    listener: ChannelAdapter | None = None  # started and stopped with the gateway
    routes: list[BaseRoute] = field(default_factory=list)  # on the gateway's HTTP listener
    senders: dict[str, Sender] = field(default_factory=dict)  # outbox kinds it delivers
    modems: ModemStatus | None = None  # signal and connection, for /metrics
    # (path prefix, page) for an unknown address or a failure under its routes.
    pages: list[tuple[str, ErrorPage]] = field(default_factory=list)


ChannelFactory = Callable[[Wiring], Channel]


def _smtp(wiring: Wiring) -> Channel:
    from channels.mail.smtp import SmtpChannel

    # Mail servers retry on 451, so a database outage is refused rather than spooled.
    return Channel(SmtpChannel(wiring.config.channels.smtp, wiring.intake.accept_or_refuse))


def _gsm(wiring: Wiring) -> Channel:
    from channels.gsm import GsmChannel
    from gateway.demo import SimulatedModems

    settings = wiring.config.channels.gsm
    simulators = SimulatedModems(settings)
    # A SIM cannot be asked to resend: during an outage messages are spooled, not kept.
    channel = GsmChannel(
        settings, wiring.intake.accept, simulators.devices(), report=wiring.reports
    )
    return Channel(
        simulators.around(channel), senders={"sms": channel.deliver}, modems=channel.status
    )


def _sip(wiring: Wiring) -> Channel:
    from channels.sip.pool import SipChannel

    # Worker processes store their own letters; a finished call cannot be asked again,
    # so in an outage they spool (into the folder this gateway drains).
    def worker(number: int) -> list[str]:
        return python_command("gateway.sip_worker", wiring.config_path, "--index", str(number))

    return Channel(SipChannel(wiring.config, worker))


def _twilio(wiring: Wiring) -> Channel:
    from channels.twilio.inbound import TwilioWebhooks
    from channels.twilio.rest import TwilioSms

    settings = wiring.config.channels.twilio
    # Twilio cannot be asked to resend a webhook it got an answer to: spool in outages.
    hooks = TwilioWebhooks(
        wiring.config,
        wiring.intake.accept,
        wiring.intake.missed_calls(settings.source),
        wiring.reports.record_status,
        wiring.clock,
    )
    # Placed after the modems, so with sms_route Twilio sends the SMS even beside a modem.
    senders: dict[str, Sender] = {"sms": TwilioSms(settings).deliver} if settings.sms_route else {}
    return Channel(routes=hooks.routes(), senders=senders)


def _web(wiring: Wiring) -> Channel:
    from channels.web.errors import error_page
    from channels.web.site import Site

    # A browser shows the 503 page and keeps what was typed: an outage is refused.
    site = Site(wiring.config, wiring.intake.accept_or_refuse, wiring.reads, wiring.clock)
    # Served from the root: the gateway mounts it last, under every other route.
    return Channel(
        routes=[Mount("/", routes=site.routes())],
        pages=[("/", functools.partial(error_page, site.templates))],
    )


# In this order: a later channel's sender of a kind replaces an earlier one's, and the
# citizen's site (at the root) comes last.
FACTORIES: dict[str, ChannelFactory] = {
    "smtp": _smtp,
    "gsm": _gsm,
    "sip": _sip,
    "twilio": _twilio,
    "web": _web,
}


def build_channels(wiring: Wiring) -> dict[str, Channel]:
    return {
        name: factory(wiring)
        for name, factory in FACTORIES.items()
        if getattr(wiring.config.channels, name).enabled
    }


def senders_of(channels: dict[str, Channel]) -> dict[str, Sender]:
    return {kind: send for channel in channels.values() for kind, send in channel.senders.items()}


def python_command(module: str, config_path: Path | None, *args: str) -> list[str]:
    """A child process of this gateway reading the same file (and the same environment)."""
    command = [sys.executable, "-m", module]
    if config_path is not None:
        command += ["--config", str(config_path)]
    return [*command, *args]
