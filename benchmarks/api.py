"""The integrator API at scale: letters listed per second through /api/v1/letters with
cursor pages, at 10k and at 1M letters, against the same keyset query in plain SQL; and
webhook deliveries per second against plain POSTs to the same local receiver.

    .venv/bin/python -m benchmarks.api [--big 1000000]

The baseline runs the query the endpoint runs (50 letters after a cursor, newest first)
straight on the engine in the same run, so the ratio is the API's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import Engine, insert, select, text

from gateway.api import auth
from gateway.api.app import Services, build_api
from gateway.config import ApiConfig, DeadlinesConfig, load_config
from gateway.deadlines import WorkCalendar
from gateway.intake import utcnow
from gateway.workflow import Workflow
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import PII, SHANGHAI, build_intake, make_contact

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def fill(engine: Engine, have: int, upto: int) -> None:
    for start in range(have, upto, 20_000):
        rows = [
            {
                "tracking_number": f"A{i:014d}",
                "verification_code": "000000",
                "channel": "web",
                "source": "bench",
                "external_id": f"a{i}",
                "received_at": NOW - timedelta(seconds=i),
                "status": "assigned",
                "subject": "路灯",
                "text": "翠屏区人民路的路灯坏了",
                "anonymous": False,
                "confidential": False,
                "publish": False,
            }
            for i in range(start, min(start + 20_000, upto))
        ]
        with engine.begin() as conn:
            conn.execute(insert(Letter), rows)


async def api_rate(client: httpx.AsyncClient, token: str, pages: int) -> float:
    cursor, listed = None, 0
    started = time.perf_counter()
    for _ in range(pages):
        params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(
                "/letters", params=params, headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
        listed += len(page["items"])
        cursor = page["next_cursor"]
    return listed / (time.perf_counter() - started)


def sql_rate(engine: Engine, pages: int) -> float:
    after, listed = None, 0
    started = time.perf_counter()
    with engine.connect() as conn:
        for _ in range(pages):
            query = select(Letter.id, Letter.tracking_number, Letter.status, Letter.received_at)
            if after is not None:
                query = query.where(Letter.id < after)
            rows = conn.execute(query.order_by(Letter.id.desc()).limit(51)).all()[:50]
            listed += len(rows)
            after = rows[-1][0]
    return listed / (time.perf_counter() - started)


async def measure(
    engine: Engine, token: str, services: Services, pages: int
) -> tuple[float, float]:
    transport = httpx.ASGITransport(app=build_api(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://h/") as client:
        await api_rate(client, token, 2)  # warm
        api = await api_rate(client, token, pages)
    return api, sql_rate(engine, pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=500)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'api.db'}", pii=PII)
        upgrade(engine)
        parts = build_intake(engine, Path(tmp))
        sessions = make_sessionmaker(engine)
        workflow = Workflow(config.routing, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: NOW)
        with sessions.begin() as session:
            token = auth.create(session, "bench", ["read"], None, NOW)
        services = Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, lambda: NOW)
        have = 0
        for size in (10_000, args.big):
            fill(engine, have, size)
            have = size
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            api, sql = asyncio.run(measure(engine, token, services, args.pages))
            print(
                f"{size:,} letters: API lists {api:.0f} letters/s, the same keyset query "
                f"in SQL {sql:.0f}/s, API/SQL = {api / sql:.2f}"
            )
        engine.dispose()
    gateway, plain = webhook_rates(args.webhooks)
    print(
        f"webhooks: {gateway:.0f} signed, ordered deliveries/s through the outbox; plain POSTs "
        f"of the same bodies {plain:.0f}/s; gateway/plain = {gateway / plain:.2f}"
    )


# -- webhook deliveries ----------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def webhook_rates(count: int) -> tuple[float, float]:
    """Deliveries per second: the outbox, job runner, signing and ordering checks, against
    plain POSTs of the same bodies to the same local receiver over one client."""
    from gateway import webhooks
    from gateway.config import JobsConfig, WebhookEndpoint, WebhooksConfig
    from gateway.outbox import queue_message
    from gateway.workers import JobRunner
    from store import jobs
    from store.jobs import JobQueue

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings = WebhooksConfig(
        allowed_hosts=["127.0.0.1"],
        endpoints=[WebhookEndpoint(name="bench", url=url, secrets=["whsec_" + "A" * 32])],
    )
    body = {
        "type": "letter.created",
        "timestamp": NOW.isoformat(),
        "data": {"tracking_number": "202611260000016", "status": "received"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'hooks.db'}", pii=PII)
        upgrade(engine)
        build_intake(engine, Path(tmp)).intake.accept_sync(make_contact(1))
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            for _ in range(count):
                message = queue_message(
                    session, webhooks.KIND, 1, "bench", body, NOW, deliver=False
                )
                jobs.enqueue(
                    session, webhooks.KIND, letter_id=1, payload={"outbox_id": message.id}, at=NOW
                )
        sender = webhooks.WebhookSender(sessions, settings)
        runner = JobRunner(
            JobQueue(sessions),
            {webhooks.KIND: webhooks.WebhookDelivery(sessions, sender, utcnow)},
            webhooks.runner_settings(settings, JobsConfig()),
        )
        started = time.perf_counter()
        while runner.run_one([webhooks.KIND]):
            pass
        gateway = count / (time.perf_counter() - started)
        sender.close()
        engine.dispose()
    raw = json.dumps(body).encode()
    with httpx.Client() as client:
        started = time.perf_counter()
        for _ in range(count):
            client.post(url, content=raw, headers={"content-type": "application/json"})
        plain = count / (time.perf_counter() - started)
    server.shutdown()
    server.server_close()
    return gateway, plain


if __name__ == "__main__":
    main()
