"""The integrator API at scale: letters listed per second through /api/v1/letters with
cursor pages, at 10k and at 1M letters, with an unscoped and a department's token, against
the same keyset query in plain SQL; and webhook deliveries per second against plain POSTs
to the same local receiver.

    .venv/bin/python -m benchmarks.api [--big 1000000] [--pages 200] [--webhooks 500]

Only what was verified counts. A listed row counts when it is the letter that belongs at
that place of that token's listing (known from how the letters were made, not from either
query): the newest first, a department's token only the letters its department has now
(never one it returned), each with its tracking number, status and lead department. The
baseline runs the query the endpoint runs (50 letters after a cursor, newest first, the
department's EXISTS for its token) straight on the engine in the same run, checked alike,
so the ratio is the API's own cost. The webhook figure is benchmarks/webhooks.py's (one
round on SQLite; run that module for rounds and PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, exists, insert, select, text

from benchmarks.common import Tally, ratio
from benchmarks.webhooks import report, webhook_rates
from gateway.api import auth
from gateway.api.app import Services, build_api
from gateway.config import ApiConfig, Config, DeadlinesConfig, load_config
from gateway.deadlines import WorkCalendar
from gateway.workflow import Workflow
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Assignment, Department, Letter
from tests.conftest import PII, SHANGHAI, build_intake

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PAGE = 50
SCOPED = "city-admin"  # the department token's department


def departments(config: Config) -> list[str]:
    return [d.code for d in config.routing.departments]


def lead_of(i: int, codes: list[str]) -> str:
    return codes[i % len(codes)]


def returned_by_scoped(i: int) -> bool:
    """Letters the scoped department had and returned (退件): no longer its own."""
    return i % 10 == 3


def fill(engine: Engine, have: int, upto: int, codes: list[str]) -> None:
    """Letters ``have`` .. ``upto``-1 with id i+1, each assigned to its lead department; one
    in ten also returned by the scoped department."""
    with engine.connect() as conn:
        ids = {code: id_ for code, id_ in conn.execute(select(Department.code, Department.id))}
    for start in range(have, upto, 20_000):
        numbers = range(start, min(start + 20_000, upto))
        letters = [
            {
                "id": i + 1,
                "tracking_number": f"A{i:014d}",
                "verification_code": "000000",
                "channel": "web",
                "source": "bench",
                "external_id": f"a{i}",
                "received_at": NOW - timedelta(seconds=upto - i),
                "status": "assigned",
                "subject": "路灯",
                "text": "翠屏区人民路的路灯坏了",
                "anonymous": False,
                "confidential": False,
                "publish": False,
            }
            for i in numbers
        ]
        assignments = [
            {
                "letter_id": i + 1,
                "department_id": ids[lead_of(i, codes)],
                "mode": "assign",
                "reply_type": "time_limited",
                "lead": True,
                "status": "assigned",
                "assigned_at": NOW,
                "due_at": NOW + timedelta(days=7),
            }
            for i in numbers
        ]
        assignments += [
            {
                "letter_id": i + 1,
                "department_id": ids[SCOPED],
                "mode": "assign",
                "reply_type": "time_limited",
                "lead": False,
                "status": "returned",
                "assigned_at": NOW,
                "due_at": NOW + timedelta(days=7),
            }
            for i in numbers
            if returned_by_scoped(i) and lead_of(i, codes) != SCOPED
        ]
        with engine.begin() as conn:
            conn.execute(insert(Letter), letters)
            conn.execute(insert(Assignment), assignments)


def expected(size: int, codes: list[str], department: str | None) -> Iterator[tuple[str, str]]:
    """(tracking number, lead department) of the letters a token lists, newest first."""
    for i in range(size - 1, -1, -1):
        if department is None or lead_of(i, codes) == department:
            yield f"A{i:014d}", lead_of(i, codes)


class Checker:
    """Compares each listed row with the one that belongs at its place."""

    def __init__(self, size: int, codes: list[str], department: str | None) -> None:
        self.rows = expected(size, codes, department)
        self.tally = Tally()

    def check(self, listed: list[tuple[str, str, str | None]]) -> None:
        for number, status, lead in listed:
            want = next(self.rows, None)
            if want is None:
                self.tally.fail("rows past the end")
            elif number != want[0]:
                self.tally.fail("rows out of place or not the token's")
                self.rows = _after(self.rows, number)  # resynchronise on what was listed
            elif status != "assigned" or (lead is not None and lead != want[1]):
                self.tally.fail("rows with a wrong status or lead department")
            else:
                self.tally.verified += 1


def _after(rows: Iterator[tuple[str, str]], number: str) -> Iterator[tuple[str, str]]:
    for row in rows:
        if row[0] < number:
            yield row
            yield from rows
            return


async def api_rate(client: httpx.AsyncClient, token: str, pages: int, checker: Checker) -> Tally:
    cursor: str | None = None
    responses: list[httpx.Response] = []
    started = time.perf_counter()
    for _ in range(pages):
        params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        answer = await client.get(
            "/letters", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        responses.append(answer)
        if answer.status_code != 200:
            break
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    seconds = time.perf_counter() - started
    for answer in responses:  # checked after the clock stopped
        if answer.status_code != 200:
            checker.tally.fail(f"pages answered {answer.status_code}")
            continue
        checker.check(
            [(i["tracking_number"], i["status"], i["department"]) for i in answer.json()["items"]]
        )
    checker.tally.seconds = seconds
    return checker.tally


def keyset(department: str | None) -> Any:
    query = select(Letter.id, Letter.tracking_number, Letter.status)
    if department is not None:
        query = query.where(
            exists(
                select(Assignment.id).where(
                    Assignment.letter_id == Letter.id,
                    Assignment.department_id
                    == select(Department.id).where(Department.code == department).scalar_subquery(),
                    Assignment.status != "returned",
                )
            )
        )
    return query


def sql_rate(engine: Engine, pages: int, department: str | None, checker: Checker) -> Tally:
    after: int | None = None
    listed: list[tuple[str, str, str | None]] = []
    started = time.perf_counter()
    # Deferred, as the API's read sessions are: neither takes SQLite's write lock.
    with engine.execution_options(read_only=True).connect() as conn:
        for _ in range(pages):
            query = keyset(department)
            if after is not None:
                query = query.where(Letter.id < after)
            rows = conn.execute(query.order_by(Letter.id.desc()).limit(PAGE + 1)).all()[:PAGE]
            listed += [(r[1], r[2], None) for r in rows]
            if not rows:
                break
            after = rows[-1][0]
    checker.tally.seconds = time.perf_counter() - started
    checker.check(listed)
    return checker.tally


@dataclass
class Listing:
    who: str
    api: Tally
    sql: Tally


async def measure(
    engine: Engine,
    tokens: dict[str | None, str],
    services: Services,
    pages: int,
    size: int,
    codes: list[str],
) -> list[Listing]:
    transport = httpx.ASGITransport(app=build_api(services))
    results = []
    async with httpx.AsyncClient(transport=transport, base_url="http://h/") as client:
        for department, token in tokens.items():
            await api_rate(client, token, 2, Checker(size, codes, department))  # warm
            api = await api_rate(client, token, pages, Checker(size, codes, department))
            sql = sql_rate(engine, pages, department, Checker(size, codes, department))
            results.append(Listing(department or "unscoped", api, sql))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=500)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    codes = departments(config)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'api.db'}", pii=PII)
        upgrade(engine)
        parts = build_intake(engine, Path(tmp))
        sessions = make_sessionmaker(engine)
        workflow = Workflow(config.routing, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: NOW)
        with sessions.begin() as session:
            workflow.sync_departments(session)
            tokens = {
                None: auth.create(session, "bench", ["read"], None, NOW),
                SCOPED: auth.create(session, "bench-dept", ["read"], SCOPED, NOW),
            }
        services = Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, lambda: NOW)
        have = 0
        for size in (10_000, args.big):
            fill(engine, have, size, codes)
            have = size
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            for r in asyncio.run(measure(engine, tokens, services, args.pages, size, codes)):
                print(
                    f"{size:,} letters, {r.who} token: API lists {r.api.rate:.0f} verified "
                    f"letters/s ({r.api.verified} rows; {r.api.problems()}), the same keyset "
                    f"query in SQL {r.sql.rate:.0f}/s ({r.sql.verified} rows; "
                    f"{r.sql.problems()}); API/SQL = {ratio(r.api.rate, r.sql.rate)}"
                )
        engine.dispose()
    gateway, plain = webhook_rates(args.webhooks, config)
    print(report(args.webhooks, gateway, plain, "SQLite"))


if __name__ == "__main__":
    main()
