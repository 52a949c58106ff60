"""Routing as a job: each new letter is classified, screened and dispatched off the
contact path, and the chasing sweep runs on a timer; both safe with several nodes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import Config
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import ROUTE
from gateway.contract.logs import log_event
from gateway.core.deadlines import WorkCalendar
from gateway.core.schedules import ScheduleError, load_schedules
from gateway.core.workflow import Workflow
from gateway.engine.notifications import media_of
from gateway.engine.workers import GiveUp, Handler
from store.db import reads_like
from store.letters import record_event
from store.models import Job, Letter

log = logging.getLogger(__name__)


def workflow_for(config: Config, clock: Callable[[], datetime]) -> Workflow:
    d = config.deadlines
    try:
        schedules = load_schedules(d.calendar_dir)
    except ScheduleError as exc:
        raise ConfigurationError(f"deadlines.calendar_dir: {exc}") from None
    calendar = WorkCalendar(
        config.zone,
        d.day_start,
        d.day_end,
        frozenset(d.extra_holidays),
        frozenset(d.extra_workdays),
        schedules,
    )
    return Workflow(
        config.routing,
        d,
        calendar,
        clock,
        notify_departments=config.outgoing_mail.enabled,
        visits=config.visits,
        # Routing screens each letter first, then sends its one receipt.
        receipts=media_of(config) if config.routing.enabled else None,
    )


class RouteHandler(Handler):
    """Routes a new letter, unless its words are still to come from a job this gateway runs
    (``awaited``: "transcription", "ocr"). That job queues a new route job in the
    transaction that writes the text or records its failure (gateway.engine.workers.LetterJob), so
    a letter left waiting here is always routed, whenever a process dies."""

    kind = ROUTE

    def __init__(
        self,
        sessions: sessionmaker[Session],
        workflow: Workflow,
        awaited: frozenset[str] = frozenset(),
    ) -> None:
        self.sessions = sessions
        self.reads = reads_like(sessions)
        self.workflow = workflow
        self.awaited = awaited

    def ready(self) -> None:
        # Load the word list now: the first letter's routing holds the letter's row lock,
        # and loading it there held a receipt's write to that letter for seconds.
        self.workflow.rules.words("路灯")

    def run(self, job: Job) -> None:
        # Words cut and the repeated matter looked for first, without the write lock that
        # intake needs; the write below re-checks the letter and uses them if still true.
        with self.reads() as session:
            seen = session.get(Letter, job.letter_id)
            ready = seen is not None and seen.status == "received" and not seen.text_pending
            reading = self.workflow.read(session, seen) if ready and seen else None
        with self.sessions.begin() as session:
            letter = session.get(Letter, job.letter_id, with_for_update=True)
            if letter is None:
                raise GiveUp(f"letter {job.letter_id} does not exist")
            if letter.status != "received":
                return  # routed already (a retried job after a lost answer)
            if letter.text_pending:
                if letter.text_source in self.awaited:
                    log_event(log, "routing.awaiting_text", letter=job.letter_id)
                    return
                # Nothing here will read it (transcription off, no model, no OCR): route on
                # what is known; with no words it is never taken for a duplicate.
                letter.text_pending = False
                record_event(
                    session,
                    at=self.workflow.clock(),
                    actor="system:routing",
                    kind="text_unavailable",
                    letter=letter,
                    source=letter.text_source,
                )
            status = self.workflow.process(session, letter, reading)
        log_event(log, "routing.done", letter=job.letter_id, status=status)


async def sweep_forever(
    sessions: sessionmaker[Session],
    workflow: Workflow,
    clock: Callable[[], datetime],
    interval: float,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            issued = await asyncio.to_thread(workflow.sweep, sessions, clock())
            if any(issued.values()):
                log_event(log, "sweep.done", **issued)
        except Exception:  # a failed sweep is retried at the next interval
            log.exception("sweep.failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
