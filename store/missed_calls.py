"""漏接回拨: callers who hung up before leaving a message, for an agent to call back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Citizen, MissedCall

log = logging.getLogger(__name__)


def find_missed(session: Session, source: str, call_id: str) -> MissedCall | None:
    return session.scalars(
        select(MissedCall).where(MissedCall.source == source, MissedCall.call_id == call_id)
    ).one_or_none()


def record_missed(
    session: Session,
    source: str,
    call_id: str,
    at: datetime,
    reason: str,
    caller: str | None,
    called: str | None,
) -> bool:
    """Once per call (a retried callback finds the first); False when already listed."""
    if find_missed(session, source, call_id) is not None:
        return False
    citizen = Citizen(phone=caller) if caller else None
    session.add(
        MissedCall(
            source=source, call_id=call_id, at=at, reason=reason, citizen=citizen, called=called
        )
    )
    return True


class MissedCalls:
    """Writes the callback list for one channel. Never raises: an entry there is not a
    letter, and failing to write one must not fail the call (or end a worker)."""

    def __init__(
        self, sessions: sessionmaker[Session], source: str, clock: Callable[[], datetime]
    ) -> None:
        self.sessions = sessions
        self.source = source
        self.clock = clock

    def __call__(self, call: str, caller: str | None, called: str | None, reason: str) -> None:
        try:
            with self.sessions.begin() as session:
                record_missed(session, self.source, call, self.clock(), reason, caller, called)
        except Exception:
            log.exception("missed_call_not_recorded source=%s call=%s", self.source, call)
