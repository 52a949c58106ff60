"""The integrator API at scale: letters listed per second through /api/v1/letters with
cursor pages, at 10k and at 1M letters, with an unscoped and a department's token, against
the same keyset query in plain SQL; and webhook deliveries per second against plain POSTs
to the same local receiver.

    .venv/bin/python -m benchmarks.api [--big 1000000] [--pages 200] [--rounds 3]
        [--postgres [URL]] [--webhooks 500]

Only what was verified counts. A listed row counts when it is the letter that belongs at
that place of that token's listing (known from how the letters were made, not from either
query): the newest first, a department's token only the letters its department has now
(never one it returned), each with its tracking number, status and lead department. The
baseline runs the query the endpoint runs (50 letters after a cursor, newest first, the
department's EXISTS for its token) straight on the engine in the same run, checked alike,
so the ratio is the API's own cost. The API is measured twice: in-process through the ASGI
app (httpx's ASGITransport), and over HTTP from a real uvicorn in a process of its own (one
keep-alive connection). Each figure is the median of ``--rounds`` rounds taking turns. The
webhook figure is benchmarks/webhooks.py's (one round on SQLite; run that module for rounds
and PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, exists, insert, select, text

from benchmarks.common import POSTGRES, Tally, median_rate, postgres_schema, ratio, summed
from benchmarks.webhooks import report, webhook_rates
from gateway.contract.config import ApiConfig, Config, DeadlinesConfig, load_config
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.frontends.api import auth
from gateway.frontends.api.app import Services, build_api
from store.db import engine_of, make_engine, make_sessionmaker
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
    asgi: list[Tally]
    http: list[Tally]
    sql: list[Tally]

    def line(self, size: int) -> str:
        asgi, http, sql = (median_rate(t) for t in (self.asgi, self.http, self.sql))
        return (
            f"{size:,} letters, {self.who} token, {len(self.sql)} rounds: API in-process "
            f"{asgi:.0f} verified letters/s ({_problems(self.asgi)}), over HTTP {http:.0f}/s "
            f"({_problems(self.http)}), the same keyset query in SQL {sql:.0f}/s "
            f"({_problems(self.sql)}); API/SQL in-process = {ratio(asgi, sql)}, "
            f"over HTTP = {ratio(http, sql)}"
        )


def _problems(tallies: list[Tally]) -> str:
    total = summed(tallies)
    return f"{total.verified} rows verified; {total.problems()}"


def services_for(url: str, root: Path, config: Config) -> Services:
    engine = make_engine(url, pii=PII)
    parts = build_intake(engine, root)
    workflow = Workflow(config.routing, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: NOW)
    sessions = make_sessionmaker(engine)
    return Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, lambda: NOW)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: EventType) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def serve(url: str, root: Path, port: int, ready: EventType) -> None:
    """The API on a real uvicorn, as serve runs it (binding its own port: a socket handed
    over from another process loses its protocol number, and asyncio then leaves Nagle's
    algorithm on, 40 ms a response), in a process of its own."""
    services = services_for(url, root, load_config(ROOT / "config.yaml", environ={}))
    config = uvicorn.Config(
        build_api(services),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        access_log=False,
    )
    _Server(config, ready).run()


@contextmanager
def http_server(url: str, root: Path) -> Iterator[str]:
    """A uvicorn serving the API in a child process, once it listens."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # a free port, given to the child
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=serve, args=(url, root, port, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"uvicorn did not listen on {port} within 60 s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        child.terminate()
        child.join(10)


async def measure(
    engine: Engine,
    tokens: dict[str | None, str],
    services: Services,
    base_url: str,
    pages: int,
    rounds: int,
    size: int,
    codes: list[str],
) -> list[Listing]:
    transport = httpx.ASGITransport(app=build_api(services))
    results = []
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://h/") as asgi,
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
    ):
        for department, token in tokens.items():
            listing = Listing(department or "unscoped", [], [], [])
            for client in (asgi, http):  # warm: compiled statements, pooled connections
                await api_rate(client, token, 2, Checker(size, codes, department))
            for _ in range(rounds):  # taking turns, so that noise falls on each alike
                for client, into in ((asgi, listing.asgi), (http, listing.http)):
                    checker = Checker(size, codes, department)
                    into.append(await api_rate(client, token, pages, checker))
                checker = Checker(size, codes, department)
                listing.sql.append(sql_rate(engine, pages, department, checker))
            results.append(listing)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=POSTGRES,
        help=f"list from PostgreSQL (default {POSTGRES}) in a schema made and dropped here",
    )
    parser.add_argument("--webhooks", type=int, default=500)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    codes = departments(config)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    with tempfile.TemporaryDirectory() as tmp:
        drop: Callable[[], None] | None = None
        if args.postgres:
            url, drop = postgres_schema(args.postgres)
        else:
            url = f"sqlite:///{Path(tmp) / 'api.db'}"
        services = services_for(url, Path(tmp), config)
        engine = engine_of(services.sessions)
        try:
            upgrade(engine)
            with services.sessions.begin() as session:
                services.workflow.sync_departments(session)
                tokens = {
                    None: auth.create(session, "bench", ["read"], None, NOW),
                    SCOPED: auth.create(session, "bench-dept", ["read"], SCOPED, NOW),
                }
            have = 0
            with http_server(url, Path(tmp)) as base_url:
                for size in (10_000, args.big):
                    fill(engine, have, size, codes)
                    have = size
                    with engine.begin() as conn:
                        conn.execute(text("ANALYZE"))
                    listings = asyncio.run(
                        measure(
                            engine, tokens, services, base_url, args.pages, args.rounds, size, codes
                        )
                    )
                    for listing in listings:
                        print(f"{backend}: {listing.line(size)}", flush=True)
        finally:
            engine.dispose()
            if drop is not None:
                drop()
    if args.webhooks:
        gateway, plain = webhook_rates(args.webhooks, config)
        print(report(args.webhooks, gateway, plain, "SQLite"))


if __name__ == "__main__":
    main()
