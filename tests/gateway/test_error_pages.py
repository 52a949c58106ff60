"""What a person sees at an address the gateway has no page for, or one typed a little
differently from the links."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import Config, DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.engine.http import build_app
from gateway.engine.metrics import Metrics
from gateway.engine.outbox import DeliveryReports
from gateway.frontends.console.app import Console
from gateway.registry import Channel, Wiring, build_channels
from store.db import make_read_sessionmaker, make_sessionmaker
from tests.conftest import SHANGHAI, Parts
from tests.gateway.test_workflow import ROUTING


def now() -> datetime:
    return datetime.now(UTC)


def parts_of_the_gateway(
    engine: Engine, parts: Parts, reads: sessionmaker[Session]
) -> tuple[Console, Channel]:
    """The console and the citizen's site, built as the gateway builds them."""
    config = Config(
        routing=ROUTING,
        channels={  # type: ignore[arg-type]
            "smtp": {"enabled": False},
            "gsm": {"enabled": False},
            "sip": {"enabled": False},
            "web": {"secret": "test-secret"},
        },
    )
    sessions = make_sessionmaker(engine)
    wiring = Wiring(config, parts.intake, DeliveryReports(sessions, now), sessions, reads, now)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), now)
    console = Console(config, sessions, parts.files, workflow, now)
    return console, build_channels(wiring)["web"]


async def test_the_console_typed_without_its_slash_is_sent_to_it_with_its_query(
    engine: Engine, parts: Parts
) -> None:
    console, web = parts_of_the_gateway(engine, parts, make_read_sessionmaker(engine))
    # The citizen's site at the root answers every address nothing else has.
    app = build_app(Metrics(), lambda: True, lambda: 0, [*console.routes(), *web.routes])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hotline.test") as c:
        moved = await c.get("/console?next=%2Fconsole%2Finbox")
        home = await c.get("/console")

    assert moved.status_code == 308
    assert moved.headers["location"] == "/console/?next=%2Fconsole%2Finbox"
    assert home.status_code == 308 and home.headers["location"] == "/console/"
