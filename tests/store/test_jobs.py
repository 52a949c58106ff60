"""The job queue: each job to one worker at a time, none lost when a worker dies."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from store.db import make_sessionmaker
from store.jobs import DONE, FAILED, QUEUED, JobQueue, enqueue
from store.models import Job

LEASE = timedelta(minutes=5)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def add_jobs(engine: Engine, n: int, at: datetime, kind: str = "transcribe") -> None:
    with make_sessionmaker(engine).begin() as session:
        for i in range(n):
            enqueue(session, kind, payload={"n": i}, at=at)


def test_concurrent_workers_never_take_the_same_job(engine: Engine) -> None:
    clock = Clock()
    add_jobs(engine, 40, clock.now)
    queue = JobQueue(make_sessionmaker(engine), clock)
    start = threading.Barrier(8)

    def work(worker: int) -> list[int]:
        start.wait()
        taken = []
        while (job := queue.claim(["transcribe"], f"w{worker}", LEASE)) is not None:
            taken.append(job.payload["n"])
            queue.complete(job)
        return taken

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))

    everything = [n for taken in results for n in taken]
    assert sorted(everything) == list(range(40))


def test_a_job_whose_worker_died_is_taken_again_after_its_lease(engine: Engine) -> None:
    clock = Clock()
    add_jobs(engine, 1, clock.now)
    queue = JobQueue(make_sessionmaker(engine), clock)
    lost = queue.claim(["transcribe"], "crashed", LEASE)
    assert lost is not None
    assert queue.claim(["transcribe"], "other", LEASE) is None

    clock.now += LEASE + timedelta(seconds=1)
    again = queue.claim(["transcribe"], "other", LEASE)

    assert again is not None and again.id == lost.id and again.attempts == 2
    queue.complete(lost)  # the dead worker's late answer must not close the new claim
    with make_sessionmaker(engine)() as session:
        assert session.get(Job, lost.id).status == "running"  # type: ignore[union-attr]
    queue.complete(again)
    with make_sessionmaker(engine)() as session:
        assert session.get(Job, lost.id).status == DONE  # type: ignore[union-attr]


def test_a_failed_job_waits_for_its_retry_time_and_can_be_given_up(engine: Engine) -> None:
    clock = Clock()
    add_jobs(engine, 1, clock.now)
    queue = JobQueue(make_sessionmaker(engine), clock)
    job = queue.claim(["transcribe"], "w", LEASE)
    assert job is not None
    queue.fail(job, "model busy", retry_in=timedelta(seconds=30))

    assert queue.claim(["transcribe"], "w", LEASE) is None
    clock.now += timedelta(seconds=31)
    retried = queue.claim(["transcribe"], "w", LEASE)
    assert retried is not None and retried.last_error == "model busy"
    queue.fail(retried, "still broken", retry_in=None)

    with make_sessionmaker(engine)() as session:
        final = session.get(Job, job.id)
        assert final is not None
        assert (final.status, final.attempts, final.last_error) == (FAILED, 2, "still broken")


def test_workers_take_only_their_kinds_and_only_due_jobs(engine: Engine) -> None:
    clock = Clock()
    add_jobs(engine, 1, clock.now, kind="ocr")
    add_jobs(engine, 1, clock.now + timedelta(hours=1), kind="transcribe")
    queue = JobQueue(make_sessionmaker(engine), clock)

    assert queue.claim(["transcribe"], "w", LEASE) is None
    ocr = queue.claim(["ocr", "transcribe"], "w", LEASE)
    assert ocr is not None and ocr.kind == "ocr"
    with make_sessionmaker(engine)() as session:
        statuses = sorted(j.status for j in session.query(Job))
    assert statuses == [QUEUED, "running"]
