"""What a person sees at an address the gateway has no page for, or when a page fails: the
citizen's site and the console answer in Chinese and in their own style, never with the
error's text; the API and Open311 keep answering for themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.contract.config import Config, DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.engine.http import build_app
from gateway.engine.metrics import Metrics
from gateway.engine.outbox import DeliveryReports
from gateway.frontends.console.app import Console
from gateway.registry import Channel, Wiring, build_channels
from store.db import make_engine, make_read_sessionmaker, make_sessionmaker
from tests.conftest import PII, SHANGHAI, Parts
from tests.console.test_browser import CONFIG
from tests.gateway.test_workflow import ROUTING
from tests.support.processes import free_port, gateway

SITE_STYLE = 'href="/static/site.css"'
CONSOLE_STYLE = 'href="/console/static/console.css"'


def now() -> datetime:
    return datetime.now(UTC)


def html(page: httpx.Response) -> str:
    assert page.headers["content-type"].startswith("text/html"), page.headers
    return page.text


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].partition(";")[0].strip()


def test_unknown_addresses_get_the_page_of_the_part_they_are_under(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(port=port), encoding="utf-8")
    with gateway(config), httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        # The console's address typed without its slash leads to it.
        assert http.get("/console", follow_redirects=True).url.path == "/console/login"

        for path in ("/no-such-page", "/static/no-such.css", "/published/1/2", "/console"):
            page = http.request("POST" if path == "/console" else "GET", path)
            assert page.status_code == 404, path
            text = html(page)
            assert "页面不存在" in text and SITE_STYLE in text and "Not Found" not in text, path

        for path in ("/console/no-such-page", "/console/static/no-such.css"):
            page = http.get(path)
            assert page.status_code == 404, path
            text = html(page)
            assert "没有这个页面" in text and CONSOLE_STYLE in text, path
            assert "Not Found" not in text and SITE_STYLE not in text, path

        # The API and Open311 answer for themselves, as before.
        api = http.get("/api/v1/no-such-page")
        assert api.status_code == 404 and media_type(api).endswith("json")
        assert api.json()
        open311 = http.get("/open311/v2/no-such-page.json")
        assert open311.status_code >= 400 and media_type(open311).endswith("json")
        assert open311.json()


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


async def test_a_failing_page_is_the_sites_or_the_consoles_and_never_shows_the_error(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    # The site reads from a database without tables: every read fails.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}", pii=PII)
    console, web = parts_of_the_gateway(engine, parts, make_read_sessionmaker(broken))

    async def fails(_: Request) -> Response:
        raise RuntimeError("secret detail: /srv/hotline/var/hotline.db")

    app = build_app(
        Metrics(),
        lambda: True,
        lambda: 0,
        [Route("/console/fails", fails), *console.routes(), *web.routes],
        pages=[("/console/", console.error_page), *web.pages],
    )
    # The server gets the exception after the page is sent (and logs it); so does httpx's.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hotline.test") as c:
            site = await c.get("/published")
            desk = await c.get("/console/fails")
    finally:
        broken.dispose()

    assert site.status_code == 500
    text = html(site)
    assert "系统出错了" in text and SITE_STYLE in text
    assert "no such table" not in text and "Internal Server Error" not in text
    assert desk.status_code == 500
    text = html(desk)
    assert "系统出错了" in text and CONSOLE_STYLE in text
    assert "secret detail" not in text and "Internal Server Error" not in text
