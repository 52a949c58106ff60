"""The integrator API at scale: letters listed per second through /api/v1/letters with
cursor pages, at 10k and at 1M letters, against the same keyset query in plain SQL.

    .venv/bin/python -m benchmarks.api [--big 1000000]

The baseline runs the query the endpoint runs (50 letters after a cursor, newest first)
straight on the engine in the same run, so the ratio is the API's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, insert, select, text

from gateway.api import auth
from gateway.api.app import Services, build_api
from gateway.config import ApiConfig, DeadlinesConfig, load_config
from gateway.deadlines import WorkCalendar
from gateway.workflow import Workflow
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import SHANGHAI, build_intake

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
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'api.db'}")
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


if __name__ == "__main__":
    main()
