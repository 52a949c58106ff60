"""Job lanes: each lane claims its own jobs, so a slow or failing kind never holds up another
lane, and a lane runs as many jobs at once as it is given workers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import JobsConfig, LaneConfig, LanesConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import DELIVER, LANES, OCR, ROUTE, WEBHOOK
from gateway.contract.labels import LANE_LABELS
from gateway.core.messages import queue_message
from gateway.engine.intake import utcnow
from gateway.engine.metrics import Metrics
from gateway.engine.outbox import delivery_handlers
from gateway.engine.workers import GiveUp, Handler, JobRunner, lanes_for
from store.db import make_sessionmaker
from store.jobs import JobQueue, enqueue
from store.models import Job, Letter
from tests.conftest import Parts, make_contact

FAST = JobsConfig(poll_interval_seconds=0.05, backoff_seconds=0.01)


class Recorded(Handler):
    """Notes when each job ran; ``hold`` keeps every job of it running until released."""

    def __init__(self, kind: str, hold: threading.Event | None = None) -> None:
        self.kind = kind
        self.hold = hold
        self.started = threading.Event()
        self.done: list[tuple[int, float]] = []

    def run(self, job: Job) -> None:
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(30), "never released"
        self.done.append((job.id, time.monotonic()))


class Failing(Handler):
    """A receiver that is down, and takes ``slow`` seconds to say so."""

    def __init__(self, kind: str, schedule: JobsConfig | None = None, slow: float = 0) -> None:
        self.kind = kind
        self.schedule = schedule
        self.slow = slow
        self.tries = 0

    def run(self, job: Job) -> None:
        self.tries += 1
        time.sleep(self.slow)
        raise RuntimeError("the receiver is down")


def queue(sessions: sessionmaker[Session], kind: str, count: int = 1) -> None:
    with sessions.begin() as session:
        for _ in range(count):
            enqueue(session, kind)


def statuses(sessions: sessionmaker[Session], kind: str) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Job.status).where(Job.kind == kind).order_by(Job.id)))


@asynccontextmanager
async def running(
    sessions: sessionmaker[Session], handlers: Mapping[str, Handler], settings: JobsConfig = FAST
) -> AsyncIterator[dict[str, JobRunner]]:
    lanes = lanes_for(sessions, handlers, settings)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)) for runner in lanes.values()]
    try:
        yield lanes
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=35)


async def until(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError("never came")
        await asyncio.sleep(0.02)


async def test_a_fax_being_read_never_delays_routing(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    release = threading.Event()
    ocr, route = Recorded(OCR, hold=release), Recorded(ROUTE)
    async with running(sessions, {OCR: ocr, ROUTE: route}):
        queue(sessions, OCR)
        await asyncio.to_thread(ocr.started.wait, 10)
        queue(sessions, ROUTE, 5)
        try:
            await until(lambda: statuses(sessions, ROUTE) == ["done"] * 5)
            # Routed while the fax is still being read, and that job still holds its claim.
            assert ocr.done == [] and statuses(sessions, OCR) == ["running"]
        finally:
            release.set()
        await until(lambda: len(ocr.done) == 1)


async def test_a_failing_receiver_never_delays_routing(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    failing, route = Failing(DELIVER, slow=0.5), Recorded(ROUTE)
    async with running(sessions, {DELIVER: failing, ROUTE: route}):
        queue(sessions, DELIVER, 20)  # 10 s of timeouts ahead of the letters, were it one line
        await until(lambda: failing.tries >= 1)
        queue(sessions, ROUTE, 3)
        await until(lambda: statuses(sessions, ROUTE) == ["done"] * 3, timeout=3)


async def test_webhooks_owed_to_a_slow_receiver_never_delay_a_citizens_receipt(
    engine: Engine,
) -> None:
    sessions = make_sessionmaker(engine)
    hooks, receipts = Failing(WEBHOOK, slow=0.5), Recorded(DELIVER)
    async with running(sessions, {WEBHOOK: hooks, DELIVER: receipts}):
        queue(sessions, WEBHOOK, 40)  # 20 s of timeouts at four at once, were it one lane
        await until(lambda: hooks.tries >= 1)
        queue(sessions, DELIVER, 3)
        await until(lambda: statuses(sessions, DELIVER) == ["done"] * 3, timeout=3)


def test_a_batch_that_fails_as_a_whole_is_retried_job_by_job_and_the_lane_goes_on(
    engine: Engine,
) -> None:
    """A batch handler's shared read can fail (a bad row, a bug): each of its jobs is then
    failed and retried with that error, never left running until its lease runs out."""
    sessions = make_sessionmaker(engine)

    class Broken(Handler):
        kind = WEBHOOK

        def run_batch(self, jobs: list[Job]) -> list[Exception | None]:
            raise ValueError("the batch's read failed")

    queue(sessions, WEBHOOK, 3)
    runner = JobRunner(JobQueue(sessions), {WEBHOOK: Broken()}, FAST, batch=8)
    assert runner.run_one([WEBHOOK])
    with sessions() as session:
        rows = session.execute(select(Job.status, Job.attempts, Job.last_error)).all()
    assert rows == [("queued", 1, "ValueError: the batch's read failed")] * 3


async def test_sms_receipts_waiting_on_the_modems_rate_never_delay_an_e_mail(
    engine: Engine, parts: Parts
) -> None:
    """A modem sends a few SMS a minute: a morning's SMS receipts wait on it. They wait in
    a lane of their own, so an e-mail receipt or a department's notice goes out at once."""
    sessions = make_sessionmaker(engine)
    letter = parts.intake.store(make_contact()).tracking_number
    mailed: list[str] = []

    def modem(to: str, payload: Mapping[str, Any], message_id: str) -> None:
        time.sleep(1.5)  # the carrier's send rate

    def relay(to: str, payload: Mapping[str, Any], message_id: str) -> None:
        mailed.append(to)

    handlers = delivery_handlers(sessions, {"sms": modem, "email": relay}, utcnow, "hotline.test")
    with sessions.begin() as session:
        letter_id = session.scalar(select(Letter.id).where(Letter.tracking_number == letter))
        assert letter_id is not None
        for n in range(12):
            queue_message(session, "sms", letter_id, f"+86138{n:08d}", {"text": "已受理"}, utcnow())
    async with running(sessions, handlers):
        await asyncio.sleep(0.3)  # the SMS lane holds its first receipts
        with sessions.begin() as session:
            queue_message(session, "email", letter_id, "citizen@example.cn", {}, utcnow())
        await until(lambda: mailed == ["citizen@example.cn"], timeout=1.5)


async def test_a_lane_runs_as_many_jobs_at_once_as_it_has_workers(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    together = threading.Barrier(4, timeout=10)  # broken unless four run at the same time

    class Meeting(Handler):
        kind = DELIVER

        def __init__(self) -> None:
            self.met = 0

        def run(self, job: Job) -> None:
            together.wait()
            self.met += 1

    meeting = Meeting()
    settings = FAST.model_copy(update={"lanes": LanesConfig(notify=LaneConfig(workers=4))})
    async with running(sessions, {DELIVER: meeting}, settings):
        queue(sessions, DELIVER, 4)
        await until(lambda: meeting.met == 4, timeout=15)
    assert statuses(sessions, DELIVER) == ["done"] * 4  # each claimed once, by one worker


async def test_each_kind_keeps_its_own_retry_schedule(engine: Engine) -> None:
    """Webhooks retry for a day, receipts five times."""
    sessions = make_sessionmaker(engine)
    once = FAST.model_copy(update={"max_attempts": 1})
    receipts, hooks = Failing(DELIVER), Failing(WEBHOOK, schedule=once)
    async with running(sessions, {DELIVER: receipts, WEBHOOK: hooks}):
        queue(sessions, DELIVER)
        queue(sessions, WEBHOOK)
        await until(lambda: statuses(sessions, DELIVER) == ["failed"], timeout=15)
        await until(lambda: statuses(sessions, WEBHOOK) == ["failed"])
    assert (receipts.tries, hooks.tries) == (FAST.max_attempts, 1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_kind_in_no_lane_is_refused_at_start(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="no lane"):
        lanes_for(make_sessionmaker(engine), {"mystery": Recorded("mystery")}, FAST)


def test_a_job_longer_than_its_lease_is_renewed_and_never_run_twice(engine: Engine) -> None:
    """A 200-page fax may take longer than the lease: while its worker lives, no other
    worker (here another node's runner) may claim it again."""
    sessions = make_sessionmaker(engine)
    short = FAST.model_copy(update={"lease_seconds": 1.5})
    runs: list[int] = []

    class Long(Handler):
        kind = OCR

        def run(self, job: Job) -> None:
            runs.append(job.id)
            time.sleep(4.5)  # three leases

    here = JobRunner(JobQueue(sessions), {OCR: Long()}, short, worker="here")
    there = JobRunner(JobQueue(sessions), {OCR: Long()}, short, worker="there")
    queue(sessions, OCR)
    running = threading.Thread(target=here.run_one, args=([OCR],))
    running.start()
    while not runs:  # claimed here first
        time.sleep(0.01)
    taken_there = []
    while running.is_alive():
        taken_there.append(there.queue.claim([OCR], "there", there.lease))
        time.sleep(0.2)
    running.join()
    assert [job for job in taken_there if job is not None] == [] and len(runs) == 1
    assert statuses(sessions, OCR) == ["done"]


class Counted(JobQueue):
    """The real queue, counting the claims that found work."""

    claims = 0

    def claim_many(self, *args: Any, **kwargs: Any) -> list[Job]:
        found = super().claim_many(*args, **kwargs)
        self.claims += bool(found)
        return found


def test_a_batch_is_claimed_together_and_one_bad_job_fails_alone(engine: Engine) -> None:
    """Routing many small letters pays one claim per batch; a job that can never succeed
    is given up on its own, and the rest of its batch is recorded done."""
    sessions = make_sessionmaker(engine)

    class Route(Handler):
        kind = ROUTE

        def run(self, job: Job) -> None:
            if job.id == 5:
                raise GiveUp("letter 5 does not exist")

    queue(sessions, ROUTE, 20)
    counted = Counted(sessions)
    runner = JobRunner(counted, {ROUTE: Route()}, FAST, batch=8)
    while runner.run_one([ROUTE]):
        pass
    assert counted.claims == 3  # 8 + 8 + 4
    assert statuses(sessions, ROUTE) == ["done"] * 4 + ["failed"] + ["done"] * 15


def test_a_handler_that_takes_batches_gets_each_claim_whole_through_the_counters(
    engine: Engine,
) -> None:
    """A handler that does a batch's work at once (webhooks: one read, one write) gets the
    claim's jobs in one call, counted as serve counts them; each failure is its job's."""
    sessions = make_sessionmaker(engine)

    class Webhooks(Handler):
        kind = WEBHOOK

        def __init__(self) -> None:
            self.batches: list[list[int]] = []

        def run_batch(self, jobs: list[Job]) -> list[Exception | None]:
            self.batches.append([job.id for job in jobs])
            return [GiveUp("gone") if job.id == 3 else None for job in jobs]

    queue(sessions, WEBHOOK, 11)
    metrics = Metrics()
    hooks = Webhooks()
    handlers = metrics.count_jobs({WEBHOOK: hooks})
    runner = lanes_for(sessions, handlers, FAST)["webhooks"]
    runner.batch = 8
    while runner.run_one([WEBHOOK]):
        pass
    assert hooks.batches == [list(range(1, 9)), [9, 10, 11]]
    assert statuses(sessions, WEBHOOK) == ["done"] * 2 + ["failed"] + ["done"] * 8
    assert metrics.jobs_done.labels(WEBHOOK)._value.get() == 10


async def test_a_route_job_another_process_queued_is_found_within_a_fraction_of_a_second(
    engine: Engine,
) -> None:
    """A SIP worker's voicemail queues its route job with no way to wake serve's lane:
    the route lane looks often (0.25 s) where the others keep the 2 s poll."""
    sessions = make_sessionmaker(engine)
    route = Recorded(ROUTE)
    async with running(sessions, {ROUTE: route}, JobsConfig()):  # the shipped polls
        await asyncio.sleep(0.3)  # idle: the lane is waiting for its next look
        queue(sessions, ROUTE)  # as another process would: nobody calls wake()
        queued = time.monotonic()
        await until(lambda: statuses(sessions, ROUTE) == ["done"], timeout=5)
        assert time.monotonic() - queued < 1.0


async def test_jobs_that_wait_never_take_the_threads_routing_needs(engine: Engine) -> None:
    """Forty receipts and webhooks waiting on a modem and a slow receiver (more than the
    default thread pool holds on any machine) and routing still goes on at once."""
    sessions = make_sessionmaker(engine)
    release = threading.Event()
    receipts, hooks = Recorded(DELIVER, hold=release), Recorded(WEBHOOK, hold=release)
    route = Recorded(ROUTE)
    wide = LanesConfig(notify=LaneConfig(workers=20), webhooks=LaneConfig(workers=20))
    settings = FAST.model_copy(update={"lanes": wide})
    async with running(sessions, {DELIVER: receipts, WEBHOOK: hooks, ROUTE: route}, settings):
        try:
            queue(sessions, DELIVER, 20)
            queue(sessions, WEBHOOK, 20)
            await until(lambda: statuses(sessions, DELIVER) == ["running"] * 20)
            await until(lambda: statuses(sessions, WEBHOOK) == ["running"] * 20)
            queue(sessions, ROUTE, 3)
            await until(lambda: statuses(sessions, ROUTE) == ["done"] * 3, timeout=5)
        finally:
            release.set()


def test_every_lane_has_a_chinese_name_on_the_dashboard() -> None:
    assert set(LANE_LABELS) == set(LANES)
