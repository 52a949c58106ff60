"""The explicit registry of channels: config.yaml's `channels.<name>.enabled` turns each on.

Adding a channel is one factory here; nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import Config
from gateway.contact import ChannelAdapter
from gateway.intake import Intake

ChannelFactory = Callable[[Config, Intake], ChannelAdapter]


def _smtp(config: Config, intake: Intake) -> ChannelAdapter:
    from channels.smtp import SmtpChannel

    # Mail servers retry on 451, so a database outage is refused rather than spooled.
    return SmtpChannel(config.channels.smtp, intake.accept_or_refuse)


FACTORIES: dict[str, ChannelFactory] = {
    "smtp": _smtp,
}


def build_channels(config: Config, intake: Intake) -> dict[str, ChannelAdapter]:
    return {
        name: factory(config, intake)
        for name, factory in FACTORIES.items()
        if getattr(config.channels, name).enabled
    }
