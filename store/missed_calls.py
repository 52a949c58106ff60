"""漏接回拨: callers who hung up before leaving a message, for an agent to call back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Citizen, Letter, MissedCall


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
    """Once per call (a retried callback finds the first), and never for a call that left a
    letter (its id is the letter's external id); False when not listed for either reason."""
    letter = select(Letter.id).where(Letter.source == source, Letter.external_id == call_id)
    if find_missed(session, source, call_id) is not None or session.scalar(letter) is not None:
        return False
    citizen = Citizen(phone=caller) if caller else None
    session.add(
        MissedCall(
            source=source, call_id=call_id, at=at, reason=reason, citizen=citizen, called=called
        )
    )
    return True
