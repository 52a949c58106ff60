"""What an operator sees and does with background work: each lane's queue in /metrics,
`hotline jobs list|retry|purge`, and done jobs purged after their age."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import generate_latest
from sqlalchemy import Engine, select

from gateway.contract.config import JobsConfig
from gateway.contract.kinds import DELIVER, OCR, ROUTE
from gateway.core.messages import queue_message
from gateway.engine.http import build_app
from gateway.engine.metrics import Metrics
from gateway.engine.outbox import DeliveryHandler
from gateway.engine.workers import GiveUp, JobRunner
from store import jobs
from store.db import make_read_sessionmaker, make_sessionmaker
from store.jobs import JobQueue, enqueue
from store.models import Job, Letter, OutboxMessage
from tests.conftest import Parts, make_contact
from tests.gateway.test_cli import hotline

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def add_job(engine: Engine, kind: str, status: str, run_after: datetime, **values: Any) -> int:
    with make_sessionmaker(engine).begin() as session:
        job = enqueue(session, kind, at=run_after)
        job.status = status
        for key, value in values.items():
            setattr(job, key, value)
        session.flush()
        return job.id


def scrape(engine: Engine) -> str:
    reads = make_read_sessionmaker(engine)
    metrics = Metrics()

    def backlog() -> list[tuple[str, str, int, datetime]]:
        with reads() as session:
            return jobs.backlog(session)

    metrics.watch_lanes(backlog, lambda: NOW)
    return generate_latest(metrics.registry).decode()


def test_metrics_give_each_lanes_depth_and_how_long_its_oldest_due_job_has_waited(
    engine: Engine,
) -> None:
    add_job(engine, ROUTE, "queued", NOW - timedelta(seconds=90))
    add_job(engine, ROUTE, "queued", NOW - timedelta(seconds=5))
    add_job(engine, ROUTE, "queued", NOW + timedelta(minutes=5))  # backing off: not yet due
    add_job(engine, OCR, "running", NOW - timedelta(minutes=3))
    add_job(engine, DELIVER, "failed", NOW - timedelta(days=1))
    add_job(engine, DELIVER, "done", NOW - timedelta(days=1))

    text = scrape(engine)

    assert 'hotline_jobs{lane="route",status="queued"} 3.0' in text
    assert 'hotline_jobs_oldest_due_seconds{lane="route"} 90.0' in text
    assert 'hotline_jobs{lane="ocr",status="running"} 1.0' in text
    assert 'hotline_jobs_oldest_due_seconds{lane="ocr"} 0.0' in text  # claimed: not waiting
    assert 'hotline_jobs{lane="notify",status="failed"} 1.0' in text
    assert 'hotline_jobs{lane="notify",status="queued"} 0.0' in text  # done jobs not counted
    assert 'hotline_jobs{lane="media",status="queued"} 0.0' in text


async def test_metrics_read_the_database_at_each_scrape() -> None:
    """`hotline_database_up` as of the scrape, not of the last /healthz."""
    up = [True]
    app = build_app(Metrics(), lambda: up[0], lambda: 0)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    async with client:
        assert "hotline_database_up 1.0" in (await client.get("/metrics")).text
        up[0] = False
        assert "hotline_database_up 0.0" in (await client.get("/metrics")).text


def test_done_jobs_are_purged_after_their_age_and_failed_ones_kept(engine: Engine) -> None:
    old = add_job(engine, ROUTE, "done", NOW, finished_at=NOW - timedelta(days=8))
    recent = add_job(engine, ROUTE, "done", NOW, finished_at=NOW - timedelta(days=6))
    failed = add_job(engine, DELIVER, "failed", NOW, finished_at=NOW - timedelta(days=30))
    queued = add_job(engine, OCR, "queued", NOW - timedelta(days=30))

    purged = jobs.purge_done(make_sessionmaker(engine), NOW - timedelta(days=7), batch=1)

    with make_sessionmaker(engine)() as session:
        left = set(session.scalars(select(Job.id)))
    assert purged == 1 and old not in left and {recent, failed, queued} <= left


def test_jobs_purge_on_the_command_line_uses_the_configured_age(
    database_url: str, engine: Engine
) -> None:
    now = datetime.now(UTC)
    add_job(engine, ROUTE, "done", now, finished_at=now - timedelta(days=8))
    add_job(engine, ROUTE, "done", now, finished_at=now - timedelta(days=2))

    default = hotline(database_url, "jobs", "purge")
    assert default.returncode == 0, default.stderr
    assert default.stdout.startswith("deleted 1 done job(s)")
    assert hotline(database_url, "jobs", "purge", "--older-than-days", "1").stdout.startswith(
        "deleted 1 "
    )


class Relay:
    """A sender that is down until it is told otherwise, keeping what it was given."""

    def __init__(self) -> None:
        self.up = False
        self.sent: list[tuple[str, str]] = []

    def __call__(self, to: str, payload: Mapping[str, Any], message_id: str) -> None:
        if not self.up:
            raise GiveUp("550 mailbox unavailable")
        self.sent.append((to, str(payload["body"])))


def test_a_given_up_receipt_is_listed_retried_and_then_sent_as_it_was_written(
    database_url: str, engine: Engine, parts: Parts
) -> None:
    number = parts.intake.accept_sync(make_contact(1)).tracking_number
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        queue_message(
            session,
            "email",
            letter.id,
            "chunyan.sima@example.net",
            {"subject": "答复", "body": "路灯已修复。"},
            NOW,
        )
    relay = Relay()
    runner = JobRunner(
        JobQueue(sessions),
        {DELIVER: DeliveryHandler(sessions, {"email": relay}, lambda: NOW, "h")},
        JobsConfig(),
    )
    assert runner.run_one([DELIVER]) and not runner.run_one([DELIVER])

    listed = hotline(database_url, "jobs", "list", "--lane", "notify", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert {k: row[k] for k in ("lane", "kind", "status", "attempts", "tracking_number")} == {
        "lane": "notify",
        "kind": DELIVER,
        "status": "failed",
        "attempts": 1,
        "tracking_number": number,
    }
    assert "550" in row["last_error"] and "chunyan" not in listed.stdout
    routes = hotline(database_url, "jobs", "list", "--lane", "route", "--json")
    assert json.loads(routes.stdout) == []  # the lane's own jobs only

    retried = hotline(database_url, "jobs", "retry", str(row["id"]))
    assert (retried.returncode, retried.stdout.strip()) == (0, "queued 1 failed job(s) again")
    assert hotline(database_url, "jobs", "retry", str(row["id"])).returncode == 1  # not failed

    relay.up = True
    assert runner.run_one([DELIVER])
    assert relay.sent == [("chunyan.sima@example.net", "路灯已修复。")]  # unsealed, whole
    with sessions() as session:
        assert session.scalars(select(OutboxMessage.status)).one() == "sent"
