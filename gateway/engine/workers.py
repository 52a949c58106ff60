"""Runs durable background jobs (routing, OCR, deliveries) off the contact path, with
retries. One runner per lane (gateway.contract.kinds.LANES), each with its own claim loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import JobsConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import LANES
from gateway.contract.logs import log_event
from gateway.engine import notices
from store.attachments import AttachmentStore
from store.db import is_outage
from store.jobs import JobQueue, enqueue, purge_done
from store.letters import record_event
from store.models import Attachment, Job, Letter

log = logging.getLogger(__name__)
S = TypeVar("S")

# (kind, reason) this process has said its jobs wait for: a missing model or tool is told
# once, not by every runner and restart within the process (no Vosk model is a normal setup).
_told_waiting: set[tuple[str, str]] = set()
_told_lock = threading.Lock()


class GiveUp(Exception):
    """The job can never succeed (a refused address, an unreadable file): don't retry."""


class Handler:
    """One kind of job. ``run`` does the work in a worker thread; ``gave_up`` records the
    final failure on the letter so nothing is silently dropped."""

    kind: str
    # Its own retry schedule, when the runner's does not suit it (webhooks retry for a day).
    schedule: JobsConfig | None = None

    def run(self, job: Job) -> None:
        raise NotImplementedError

    def run_batch(self, jobs: list[Job]) -> list[Exception | None]:
        """Run jobs of this kind claimed together; each one's failure, or None. A handler
        that can do a batch's work at once (one read, one write) overrides this."""
        outcomes: list[Exception | None] = []
        for job in jobs:
            try:
                self.run(job)
            except Exception as exc:  # this job's failure, settled by the runner
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def gave_up(self, job: Job, error: str) -> None:
        """Called once when the job will not be tried again."""

    def ready(self) -> None:
        """Raise ConfigurationError while the tool or model the job needs is missing;
        jobs then wait instead of failing."""


def _tell_waiting(kind: str, reason: str) -> None:
    """A warning, not an error: the jobs stay queued and run once the model or tool is
    there, and nothing is lost meanwhile."""
    with _told_lock:
        if (kind, reason) in _told_waiting:
            return
        _told_waiting.add((kind, reason))
    log_event(log, "jobs.waiting", logging.WARNING, kind=kind, reason=reason)


class JobRunner:
    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        settings: JobsConfig,
        worker: str | None = None,
        workers: int = 1,
        batch: int = 1,
        poll_seconds: float | None = None,
    ) -> None:
        """``workers``: claim loops at once (a lane's concurrency); ``batch``: jobs each
        claims in one transaction and runs in turn."""
        self.queue = queue
        self.handlers = handlers
        self.settings = settings
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.workers = workers
        self.batch = batch
        # How often to look for jobs other processes queued (this one's wake us at once).
        self.poll_seconds = poll_seconds or settings.poll_interval_seconds
        self._wake = asyncio.Event()
        # A claim must outlast the slowest kind this runner may take.
        self.lease = timedelta(
            seconds=max(self._schedule(kind).lease_seconds for kind in handlers)
            if handlers
            else settings.lease_seconds
        )

    def _schedule(self, kind: str) -> JobsConfig:
        return self.handlers[kind].schedule or self.settings

    def wake(self) -> None:
        """New work was queued on this node: look now rather than at the next poll."""
        self._wake.set()

    def wake_for(self, kind: str) -> None:
        """Jobs of ``kind`` were queued somewhere (engine.notices): wake if they are ours."""
        if kind in self.handlers:
            self.wake()

    def waker(self) -> Callable[[], None]:
        """A wake() that any thread may call."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        return wake

    def runnable_kinds(self) -> list[str]:
        kinds = []
        for kind, handler in self.handlers.items():
            try:
                handler.ready()
            except ConfigurationError as exc:
                _tell_waiting(kind, str(exc))
                continue
            kinds.append(kind)
        return kinds

    async def run(self, stop: asyncio.Event) -> None:
        kinds = await asyncio.to_thread(self.runnable_kinds)  # may load a model or a tool
        # From here on this runner claims: what an operator (or a test) waits for at start.
        log_event(log, "jobs.ready", kinds=",".join(kinds), workers=self.workers)
        # Threads of the lane's own: jobs that wait (a webhook receiver's second, a modem's
        # send rate) never take the threads other lanes, intake and /metrics run on.
        threads = ThreadPoolExecutor(
            self.workers, thread_name_prefix="jobs-" + "-".join(self.handlers)
        )
        try:
            loops = (self._claim_loop(kinds, stop, threads) for _ in range(self.workers))
            await asyncio.gather(*loops)
        finally:
            threads.shutdown(wait=False)

    def run_until_signalled(self) -> None:
        """A worker process's life (hotline stt worker, hotline jobs worker): the jobs until
        SIGTERM or SIGINT, then the job in hand is finished and the process ends."""

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await asyncio.gather(
                self.run(stop),
                notices.listen(self.queue.engine, self.wake_for, self.wake, stop),
            )

        asyncio.run(run())

    async def _claim_loop(
        self, kinds: list[str], stop: asyncio.Event, threads: ThreadPoolExecutor
    ) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            # Cleared before looking: a wake that comes while this loop looks is kept.
            self._wake.clear()
            try:
                ran = await loop.run_in_executor(threads, self.run_one, kinds) if kinds else False
            except sa_exc.SQLAlchemyError as exc:
                if not is_outage(exc):
                    raise
                # The jobs wait in the database: nothing to do but try again later.
                log_event(log, "jobs.database_unreachable", logging.WARNING, error=str(exc))
                ran = False
            if ran:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self._wake), timeout=self.poll_seconds)

    def run_one(self, kinds: list[str]) -> bool:
        """Claim and run up to ``batch`` jobs (claimed together, their completions recorded
        together); False when there was none."""
        if not self.queue.any_due(kinds):
            return False
        claimed = self.queue.claim_many(kinds, self.worker, self.lease, self.batch)
        if not claimed:
            return False
        with self._holding(claimed):
            done = [
                job for job, failure in self._run_batches(claimed) if self._settle(job, failure)
            ]
        self.queue.complete_many(done)
        for job in done:
            log_event(log, "job.done", kind=job.kind, job=job.id, letter=job.letter_id)
        return True

    def _run_batches(self, claimed: list[Job]) -> Iterator[tuple[Job, Exception | None]]:
        """Each kind's jobs of the claim go to its handler together, in claim order."""
        for kind in dict.fromkeys(job.kind for job in claimed):
            jobs = [job for job in claimed if job.kind == kind]
            try:
                outcomes = self.handlers[kind].run_batch(jobs)
            except Exception as exc:  # the batch failed as a whole: so did each of its jobs
                outcomes = [exc] * len(jobs)
            yield from zip(jobs, outcomes, strict=True)

    def _settle(self, job: Job, failure: Exception | None) -> bool:
        """True when the job succeeded; else it is retried, or given up."""
        if failure is None:
            return True
        handler = self.handlers[job.kind]
        schedule = self._schedule(job.kind)
        if isinstance(failure, GiveUp):
            self._give_up(handler, job, str(failure))
            return False
        error = f"{type(failure).__name__}: {failure}"
        if job.attempts >= schedule.max_attempts:
            self._give_up(handler, job, error)
            return False
        delay = schedule.backoff_seconds * 2 ** (job.attempts - 1)
        self.queue.fail(job, error, retry_in=timedelta(seconds=delay))
        log_event(
            log,
            "job.retry",
            logging.WARNING,
            kind=job.kind,
            job=job.id,
            attempt=job.attempts,
            error=error,
            retry_in=delay,
        )
        return False

    @contextlib.contextmanager
    def _holding(self, jobs: list[Job]) -> Iterator[None]:
        """Renew the jobs' leases while they run, so a long job (a 200-page fax) is never
        claimed a second time by another worker; a worker that dies stops renewing, and
        its jobs are claimed again once their lease runs out."""
        done = threading.Event()

        def renew() -> None:
            held = list(jobs)
            while held and not done.wait(self.lease.total_seconds() / 3):
                try:
                    # One claimed by another (its lease ran out) answers there, not here.
                    held = [job for job in held if self.queue.renew(job, self.lease)]
                except sa_exc.SQLAlchemyError as exc:
                    log_event(log, "job.lease_not_renewed", logging.WARNING, error=str(exc))

        keeper = threading.Thread(target=renew, name=f"lease-{jobs[0].id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _give_up(self, handler: Handler, job: Job, error: str) -> None:
        self.queue.fail(job, error, retry_in=None)
        handler.gave_up(job, error)
        log_event(
            log,
            "job.failed",
            logging.ERROR,
            kind=job.kind,
            job=job.id,
            letter=job.letter_id,
            error=error,
        )


def lanes_for(
    sessions: sessionmaker[Session], handlers: Mapping[str, Handler], settings: JobsConfig
) -> dict[str, JobRunner]:
    """One runner per lane that has a handler here, with the lane's own concurrency."""
    unplaced = set(handlers) - {kind for kinds in LANES.values() for kind in kinds}
    if unplaced:
        raise ConfigurationError(f"job kinds in no lane (gateway.contract.kinds.LANES): {unplaced}")
    runners = {}
    for lane, kinds in LANES.items():
        mine = {kind: handlers[kind] for kind in kinds if kind in handlers}
        if mine:
            config = getattr(settings.lanes, lane)
            runners[lane] = JobRunner(
                JobQueue(sessions),
                mine,
                settings,
                workers=config.workers,
                batch=config.batch,
                poll_seconds=config.poll_seconds,
            )
    return runners


PURGE_EVERY_SECONDS = 3600


async def purge_forever(
    sessions: sessionmaker[Session],
    settings: JobsConfig,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
) -> None:
    """Delete done jobs older than ``keep_done_days``, now and then hourly: the table the
    lanes claim from stays the size of the work in hand, not of every job ever run."""
    while not stop.is_set():
        cutoff = clock() - timedelta(days=settings.keep_done_days)
        try:
            purged = await asyncio.to_thread(purge_done, sessions, cutoff)
        except sa_exc.SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
            purged = 0  # the next round will find them
        if purged:
            log_event(log, "jobs.purged", jobs=purged, finished_before=cutoff.isoformat())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PURGE_EVERY_SECONDS)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class LetterJob(Handler, Generic[S]):
    """A job about one letter (OCR, transcription): it reads the letter's files and writes
    its result back with an event; a final failure is an event too, and the letter keeps
    its files for a person to read or hear. ``S`` is its config section.

    A letter waiting for its words (``text_pending``) is released by the job that writes
    them (``update(..., settles_text=True)``) or by any job of it that gives up: in that
    same transaction the flag is cleared and ``after_text`` is queued (routing: "route"),
    so the letter is routed exactly when its text is known, or known never to come."""

    actor: str
    failed_event: str

    def __init__(
        self,
        sessions: sessionmaker[Session],
        files: AttachmentStore,
        settings: S,
        clock: Callable[[], datetime],
        after_text: tuple[str, ...] = (),
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.settings = settings
        self.clock = clock
        self.after_text = after_text

    def files_of(self, job: Job) -> list[tuple[str, str, str]]:
        """(filename, media type, sha256) of every attachment of the job's letter."""
        with self.sessions() as session:
            letter = session.get(Letter, job.letter_id)
            if letter is None:
                raise GiveUp(f"letter {job.letter_id} does not exist")
            return [(a.filename, a.media_type, a.sha256) for a in letter.attachments]

    def update(
        self,
        job: Job,
        event: str,
        changes: Mapping[str, Any],
        *,
        settles_text: bool = False,
        **detail: Any,
    ) -> None:
        with self.sessions.begin() as session:
            letter = session.get(Letter, job.letter_id, with_for_update=True)
            if letter is None:
                return
            for column, value in changes.items():
                setattr(letter, column, value)
            record_event(
                session, at=self.clock(), actor=self.actor, kind=event, letter=letter, **detail
            )
            if settles_text and letter.text_pending:
                letter.text_pending = False
                for kind in self.after_text:
                    enqueue(session, kind, letter_id=letter.id, at=self.clock())

    def attach(
        self,
        job: Job,
        event: str,
        file: tuple[str, str, bytes],
        then: tuple[str, ...] = (),
    ) -> None:
        """A file (name, media type, bytes) fetched for the letter after it was stored, such
        as a voicemail's recording: on disk first, then its row, its event and the jobs it
        needs (``then``: a recording's transcription) in one transaction."""
        filename, media_type, data = file
        stored = self.files.put(data)
        with self.sessions.begin() as session:
            letter = session.get(Letter, job.letter_id)
            if letter is None:
                raise GiveUp(f"letter {job.letter_id} does not exist")
            session.add(
                Attachment(
                    letter_id=letter.id,
                    filename=filename,
                    media_type=media_type,
                    size=stored.size,
                    sha256=stored.sha256,
                )
            )
            for kind in then:
                enqueue(session, kind, letter_id=letter.id, at=self.clock())
            at, size = self.clock(), stored.size
            record_event(
                session,
                at=at,
                actor=self.actor,
                kind=event,
                letter=letter,
                filename=filename,
                size=size,
            )

    def gave_up(self, job: Job, error: str) -> None:
        # No text will come from this letter's files now: route it on what is known.
        self.update(job, self.failed_event, {}, settles_text=True, error=error)
