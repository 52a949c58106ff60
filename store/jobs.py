"""The durable work queue: jobs are claimed with a lease, so a crashed worker loses none.

On PostgreSQL a claim is ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers on several
gateway nodes take different jobs without waiting on each other; SQLite has one writer at
a time (BEGIN IMMEDIATE), which gives the same guarantee on one node.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, delete, event, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from store.db import engine_of, make_read_sessionmaker
from store.models import Job

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# PostgreSQL's LISTEN/NOTIFY channel: a commit that queued jobs names their kinds on it, so
# lanes in other processes and on other nodes look at once (gateway.engine.notices).
NOTICES = "hotline_jobs"
_QUEUED_KINDS = "hotline.queued_kinds"  # in Session.info until the commit


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    session: Session,
    kind: str,
    *,
    letter_id: int | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Job:
    """Add a job in the caller's transaction, so it exists exactly when its cause does."""
    moment = at or _now()
    job = Job(
        kind=kind,
        letter_id=letter_id,
        payload=payload or {},
        status=QUEUED,
        attempts=0,
        run_after=moment,
        created_at=moment,
    )
    session.add(job)
    announce(session, [kind])
    return job


def announce(session: Session, kinds: Sequence[str]) -> None:
    """Name these kinds in the PostgreSQL notice sent when this transaction commits: once
    per transaction however many jobs it queued, and never on a rollback, like the jobs."""
    session.info.setdefault(_QUEUED_KINDS, set()).update(kinds)


@event.listens_for(Session, "before_commit")
def _notify(session: Session) -> None:
    kinds = session.info.pop(_QUEUED_KINDS, None)
    if kinds and session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(NOTICES, ",".join(sorted(kinds)))))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_QUEUED_KINDS, None)


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Due and queued, or running under a lease that ran out (its worker died)."""
    return or_(
        (Job.status == QUEUED) & (Job.run_after <= now),
        (Job.status == RUNNING) & (Job.locked_until < now),
    )


def enqueue_many(session: Session, jobs: Sequence[tuple[str, int]], at: datetime) -> int:
    """Add (kind, letter id) jobs in the caller's transaction with one insert (intake
    queues a batch's route jobs this way); how many."""
    if jobs:
        row = {"payload": {}, "status": QUEUED, "attempts": 0, "run_after": at, "created_at": at}
        session.execute(
            insert(Job), [{**row, "kind": kind, "letter_id": letter} for kind, letter in jobs]
        )
        announce(session, [kind for kind, _ in jobs])
    return len(jobs)


class JobQueue:
    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = _now
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.engine: Engine = engine_of(sessions)
        # Looking for work only reads: an idle lane never takes SQLite's one write lock.
        self.reads = make_read_sessionmaker(self.engine)

    def any_due(self, kinds: Sequence[str]) -> bool:
        """Whether a claim would find a job of these kinds now (read, not locked)."""
        now = self.clock()
        with self.reads() as session:
            return (
                session.scalar(select(Job.id).where(Job.kind.in_(kinds), _claimable(now)).limit(1))
                is not None
            )

    def claim(self, kinds: Sequence[str], worker: str, lease: timedelta) -> Job | None:
        """Take the oldest due job of these kinds, or one whose worker's lease ran out."""
        return next(iter(self.claim_many(kinds, worker, lease, 1)), None)

    def claim_many(
        self, kinds: Sequence[str], worker: str, lease: timedelta, limit: int
    ) -> list[Job]:
        """Take up to ``limit`` of the oldest due jobs in one transaction (a lane of many
        small jobs pays one claim, not one per job)."""
        now = self.clock()
        with self.sessions.begin() as session:
            jobs = list(
                session.scalars(
                    select(Job)
                    .where(Job.kind.in_(kinds), _claimable(now))
                    .order_by(Job.run_after, Job.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for job in jobs:
                job.status = RUNNING
                job.attempts += 1
                # One claim, one holder: a job claimed again never answers to an earlier one.
                job.locked_by = f"{worker}/{secrets.token_hex(4)}"
                job.locked_until = now + lease
            return jobs

    def renew(self, job: Job, lease: timedelta) -> bool:
        """Extend the claim of a job still running; False once it is no longer ours."""
        with self.sessions.begin() as session:
            current = session.get(Job, job.id, with_for_update=True)
            if current is None or current.locked_by != job.locked_by or current.status != RUNNING:
                return False
            current.locked_until = self.clock() + lease
            return True

    def complete(self, job: Job) -> None:
        self.complete_many([job])

    def complete_many(self, jobs: Sequence[Job]) -> None:
        """Mark these jobs done in one transaction (those still ours)."""
        if not jobs:
            return
        with self.sessions.begin() as session:
            session.execute(
                update(Job)
                # One whose lease ran out and was claimed again answers to that claim. The
                # ids alone lead: SQLite searches a row-value IN by no index of its own.
                .where(
                    Job.id.in_([job.id for job in jobs]),
                    tuple_(Job.id, Job.locked_by).in_([(job.id, job.locked_by) for job in jobs]),
                    Job.status == RUNNING,
                )
                .values(status=DONE, finished_at=self.clock(), locked_until=None)
                .execution_options(synchronize_session=False)
            )

    def fail(self, job: Job, error: str, retry_in: timedelta | None) -> None:
        """Record the failure; queue it again after ``retry_in``, or give up when None."""
        if retry_in is None:
            self._finish(job, status=FAILED, last_error=error)
        else:
            self._update(
                job,
                status=QUEUED,
                last_error=error,
                locked_by=None,
                locked_until=None,
                run_after=self.clock() + retry_in,
            )

    def _finish(self, job: Job, **values: Any) -> None:
        self._update(job, finished_at=self.clock(), locked_until=None, **values)

    def _update(self, job: Job, **values: Any) -> None:
        with self.sessions.begin() as session:
            current = session.get(Job, job.id, with_for_update=True)
            # A worker whose lease ran out no longer owns the job: its late answer is dropped.
            if current is None or current.locked_by != job.locked_by or current.status != RUNNING:
                return
            for key, value in values.items():
                setattr(current, key, value)


# -- operators ----------------------------------------------------------------------------


def backlog(session: Session) -> list[tuple[str, str, int, datetime]]:
    """(kind, status, jobs, earliest run_after) of every queued, running and failed job
    kind. The earliest run_after of queued jobs is the oldest due one's whenever any is
    due (a job backing off is due later than any due job)."""
    rows = session.execute(
        select(Job.kind, Job.status, func.count(), func.min(Job.run_after))
        .where(Job.status.in_([QUEUED, RUNNING, FAILED]))
        .group_by(Job.kind, Job.status)
    )
    return [(kind, status, count, earliest) for kind, status, count, earliest in rows]


def purge_done(
    sessions: sessionmaker[Session], finished_before: datetime, batch: int = 1000
) -> int:
    """Delete done jobs that finished before the cutoff, a batch per transaction (SQLite's
    one writer is held briefly); failed jobs stay for a person. Returns how many."""
    deleted = 0
    while True:
        with sessions.begin() as session:
            ids = session.scalars(
                select(Job.id)
                .where(Job.status == DONE, Job.finished_at < finished_before)
                .limit(batch)
            ).all()
            if ids:
                session.execute(delete(Job).where(Job.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


def retry(session: Session, query: Select[Job], now: datetime) -> list[Job]:
    """Queue the failed jobs ``query`` selects again, due now, with their attempts reset."""
    jobs = list(session.scalars(query.where(Job.status == FAILED).with_for_update()))
    for job in jobs:
        job.status, job.attempts, job.run_after = QUEUED, 0, now
        job.locked_by = job.locked_until = job.finished_at = None
    announce(session, [job.kind for job in jobs])
    return jobs
