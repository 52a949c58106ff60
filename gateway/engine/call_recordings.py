"""Call recordings are kept ``acd.keep_recordings_days``, then deleted: a recording of a
citizen's call is their personal data, kept no longer than the city's retention rule says.

A recording is the ``call-recording.wav`` attachment a SIP worker adds to the letter of a
call a seat answered (channels/sip/queueing.py). Its row goes with an event on the letter
saying so; its file goes once no other attachment has the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.contact import CALL_RECORDING
from gateway.contract.logs import log_event
from store.attachments import AttachmentStore
from store.db import is_outage
from store.letters import record_event
from store.models import Attachment, Letter

log = logging.getLogger(__name__)
FILENAME = CALL_RECORDING  # what the SIP worker names a talk's recording
BATCH = 500
PURGE_EVERY_SECONDS = 3600


def purge_recordings(
    sessions: sessionmaker[Session], files: AttachmentStore, cutoff: datetime, now: datetime
) -> int:
    """Delete the recordings of calls received before ``cutoff``; how many."""
    purged = 0
    while True:
        gone: list[str] = []
        with sessions.begin() as session:
            rows = session.scalars(
                select(Attachment)
                .join(Letter, Letter.id == Attachment.letter_id)
                .where(Attachment.filename == FILENAME, Letter.received_at < cutoff)
                .limit(BATCH)
            ).all()
            for row in rows:
                record_event(
                    session,
                    at=now,
                    actor="retention",
                    kind="recording_deleted",
                    letter=row.letter,
                    filename=row.filename,
                    sha256=row.sha256,
                )
                session.delete(row)
                gone.append(row.sha256)
            session.flush()
            still_named = set(
                session.scalars(select(Attachment.sha256).where(Attachment.sha256.in_(gone)))
            )
        for sha256 in set(gone) - still_named:  # after the commit: rows never dangle
            files.remove(sha256)
        purged += len(rows)
        if len(rows) < BATCH:
            return purged


async def purge_recordings_forever(
    sessions: sessionmaker[Session],
    files: AttachmentStore,
    keep_days: float,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
) -> None:
    """Now, then hourly; a database outage waits for the next round."""
    while not stop.is_set():
        now = clock()
        try:
            purged = await asyncio.to_thread(
                purge_recordings, sessions, files, now - timedelta(days=keep_days), now
            )
        except sa_exc.SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
            purged = 0
        if purged:
            log_event(log, "recordings.purged", recordings=purged, keep_days=keep_days)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PURGE_EVERY_SECONDS)
