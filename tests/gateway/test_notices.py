"""On PostgreSQL a commit that queues jobs wakes the lanes of every other process and node
at once (NOTIFY); a lane no longer waits for its next poll to find them."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url, select, text

from gateway.contract.config import JobsConfig
from gateway.contract.kinds import ROUTE
from gateway.engine import notices
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from gateway.engine.workers import Handler, JobRunner
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.jobs import NOTICES, JobQueue, enqueue
from store.models import Job, Letter
from tests.conftest import PII, SHANGHAI, make_contact

SLOW_POLL = 30.0  # longer than any test waits: only a notice can wake the lane


class Ran(Handler):
    """Waits for one letter's job: the session's schema may hold other tests' jobs."""

    def __init__(self) -> None:
        self.letters: set[int] = set()
        self.changed = threading.Condition()

    def run(self, job: Job) -> None:
        with self.changed:
            self.letters.add(job.letter_id)
            self.changed.notify_all()

    def wait_for(self, letter_id: int, seconds: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: letter_id in self.letters, seconds)


@pytest.fixture
def pg(postgres_schema_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_schema_url)
    yield engine
    engine.dispose()


def letter_id_of(engine: Engine, tracking_number: str | None) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            select(Letter.id).where(Letter.tracking_number == tracking_number)
        ).scalar_one()
    return int(found)


def listener(url: str) -> psycopg.Connection[tuple[object, ...]]:
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(plain, autocommit=True)
    conn.execute(f"LISTEN {NOTICES}")
    return conn


def heard(conn: psycopg.Connection[tuple[object, ...]], seconds: float) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=seconds)]


def test_a_commit_names_its_kinds_once_and_a_rollback_says_nothing(
    pg: Engine, postgres_schema_url: str
) -> None:
    # Kinds of their own: other tests on this database send notices too.
    first, second = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    sessions = make_sessionmaker(pg)
    with listener(postgres_schema_url) as conn:
        with sessions() as session:
            enqueue(session, first)
            session.rollback()
        with sessions.begin() as session:
            for _ in range(50):
                enqueue(session, second)
            for _ in range(50):
                enqueue(session, first)
        mine = [p for p in heard(conn, 1.0) if first in p or second in p]
    assert mine == [",".join(sorted([first, second]))]


async def test_a_letter_stored_by_another_process_wakes_the_route_lane_at_once(
    pg: Engine, postgres_schema_url: str, tmp_path: Path
) -> None:
    metrics = Metrics()
    files, spool = AttachmentStore(tmp_path / "files"), Spool(tmp_path / "spool", metrics)
    handler = Ran()
    runner = JobRunner(
        JobQueue(make_sessionmaker(pg)), {ROUTE: handler}, JobsConfig(), poll_seconds=SLOW_POLL
    )
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(runner.run(stop)),
        asyncio.create_task(notices.listen(pg, runner.wake_for, runner.wake, stop)),
    ]
    try:
        await asyncio.sleep(1.0)  # the lane looked, found nothing and waits for its poll
        # A SIP worker storing a voicemail: its own engine and intake queue the route job.
        # A contact of its own: the same one stored by an earlier test on this schema would
        # be a known letter, and queue no job.
        other = make_engine(postgres_schema_url, pii=PII)
        try:
            accepted = Intake(
                make_sessionmaker(other), files, spool, Metrics(), SHANGHAI, standing_jobs=(ROUTE,)
            ).store(make_contact(external_id=f"notice-{uuid.uuid4().hex}"))
        finally:
            other.dispose()
        queued = time.monotonic()
        assert accepted.created
        letter_id = letter_id_of(pg, accepted.tracking_number)
        assert await asyncio.to_thread(handler.wait_for, letter_id, 5), (
            "the lane waited for its poll"
        )
        assert time.monotonic() - queued < 2
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_the_listener_comes_back_after_its_connection_is_cut(
    pg: Engine, postgres_schema_url: str
) -> None:
    woken: list[str] = []
    connected = asyncio.Event()

    def wake_all() -> None:
        connected.set()

    stop = asyncio.Event()
    task = asyncio.create_task(notices.listen(pg, woken.append, wake_all, stop))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        connected.clear()
        with pg.begin() as conn:  # a database restart, as the listener sees it
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": notices.APPLICATION_NAME},
            ).all()
        assert cut, "no listening connection found"
        await asyncio.wait_for(connected.wait(), 10)
        kind = f"k-{uuid.uuid4().hex[:8]}"
        with make_sessionmaker(pg).begin() as session:
            enqueue(session, kind)
        deadline = time.monotonic() + 5
        while kind not in woken and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert kind in woken
    finally:
        stop.set()
        await task
