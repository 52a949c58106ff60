"""The explicit registry of channels: config.yaml's `channels.<name>.enabled` turns each on.

Adding a channel is one factory here; nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.contract.config import Config
from gateway.contract.contact import ChannelAdapter
from gateway.engine.intake import Intake
from gateway.engine.metrics import ModemStatus
from gateway.engine.outbox import DeliveryReports, Sender


@dataclass
class Wiring:
    """What channels are built from, and what they offer back (senders for the outbox)."""

    config: Config
    intake: Intake
    reports: DeliveryReports
    senders: dict[str, Sender] = field(default_factory=dict)
    modem_status: ModemStatus | None = None
    # The file the gateway was started with, for the worker processes a channel runs.
    config_path: Path | None = None


ChannelFactory = Callable[[Wiring], ChannelAdapter]


def _smtp(wiring: Wiring) -> ChannelAdapter:
    from channels.mail.smtp import SmtpChannel

    # Mail servers retry on 451, so a database outage is refused rather than spooled.
    return SmtpChannel(wiring.config.channels.smtp, wiring.intake.accept_or_refuse)


def _gsm(wiring: Wiring) -> ChannelAdapter:
    from channels.gsm import GsmChannel
    from gateway.demo import SimulatedModems

    settings = wiring.config.channels.gsm
    simulators = SimulatedModems(settings)
    # A SIM cannot be asked to resend: during an outage messages are spooled, not kept.
    channel = GsmChannel(
        settings, wiring.intake.accept, simulators.devices(), report=wiring.reports
    )
    wiring.senders["sms"] = channel.deliver
    wiring.modem_status = channel.status
    return simulators.around(channel)


def _sip(wiring: Wiring) -> ChannelAdapter:
    from channels.sip.pool import SipChannel

    # Worker processes store their own letters; a finished call cannot be asked again,
    # so in an outage they spool (into the folder this gateway drains).
    return SipChannel(wiring.config, wiring.config_path)


FACTORIES: dict[str, ChannelFactory] = {
    "smtp": _smtp,
    "gsm": _gsm,
    "sip": _sip,
}


def build_channels(wiring: Wiring) -> dict[str, ChannelAdapter]:
    return {
        name: factory(wiring)
        for name, factory in FACTORIES.items()
        if getattr(wiring.config.channels, name).enabled
    }
