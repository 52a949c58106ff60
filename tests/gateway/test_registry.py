"""Every channel is wired the same way: one factory per config section, built from one
Wiring into one Channel (listener, routes, senders), in an order that decides who sends
SMS and keeps the citizen's site at the root, under everything else."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from starlette.routing import Mount

from channels.mail.smtp import SmtpChannel
from gateway.contract.config import ChannelsConfig, Config
from gateway.engine.outbox import DeliveryReports
from gateway.registry import FACTORIES, Wiring, build_channels, senders_of
from store.db import make_read_sessionmaker, make_sessionmaker
from tests.conftest import Parts

TWILIO = {
    "enabled": True,
    "account_sid": "AC" + "0" * 32,
    "auth_token": "secret",
    "public_url": "https://hotline.example.cn",
}


def now() -> datetime:
    return datetime.now(UTC)


def wiring(config: Config, engine: Engine, parts: Parts) -> Wiring:
    sessions = make_sessionmaker(engine)
    return Wiring(
        config,
        parts.intake,
        DeliveryReports(sessions, now),
        sessions,
        make_read_sessionmaker(engine),
        now,
    )


def test_each_channel_section_of_the_config_has_its_factory() -> None:
    assert list(FACTORIES) == ["smtp", "gsm", "sip", "twilio", "web"]
    assert set(FACTORIES) == set(ChannelsConfig.model_fields)


def test_channels_offer_a_listener_routes_and_senders_and_only_when_enabled(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    config = Config(
        channels={  # type: ignore[arg-type]
            "smtp": {"port": 0},
            "gsm": {"enabled": False},
            "sip": {"enabled": False},
            "twilio": {**TWILIO, "sms_route": True, "from_number": "+8612345"},
            "web": {"secret": "test-secret"},
        }
    )
    channels = build_channels(wiring(config, engine, parts))

    assert list(channels) == ["smtp", "twilio", "web"]
    assert isinstance(channels["smtp"].listener, SmtpChannel)
    assert channels["smtp"].routes == [] and channels["smtp"].senders == {}
    assert channels["twilio"].listener is None
    assert [r.path for r in channels["twilio"].routes if isinstance(r, Mount)] == ["/twilio"]
    assert list(senders_of(channels)) == ["sms"]
    assert senders_of(channels)["sms"].__self__.__class__.__name__ == "TwilioSms"  # type: ignore[attr-defined]
    [root] = channels["web"].routes
    assert isinstance(root, Mount) and root.path == ""  # the site at the root, mounted last
    assert list(channels)[-1] == "web"


def test_twilio_sends_no_sms_unless_it_is_the_sms_route(engine: Engine, parts: Parts) -> None:
    config = Config(
        channels={  # type: ignore[arg-type]
            "smtp": {"enabled": False},
            "gsm": {"enabled": False},
            "sip": {"enabled": False},
            "twilio": TWILIO,
            "web": {"enabled": False},
        }
    )
    channels = build_channels(wiring(config, engine, parts))
    assert list(channels) == ["twilio"]
    assert senders_of(channels) == {}
