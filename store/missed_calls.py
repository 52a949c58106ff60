"""漏接回拨: callers who hung up before leaving a message, for an agent to call back."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.letters import record_event
from store.models import Citizen, Event, Letter, MissedCall

# The reason a channel gives for a call it handed over whole to another (Twilio to the SIP
# side's seats queue): that channel lists the call if it is missed there, this one never.
HANDED_OVER = "handed_over"
_HANDED_OVER_EVENT = "call_handed_over"
# Twilio ends a call after four hours: a handover is looked for no further back.
_LONGEST_CALL = timedelta(hours=4)


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
    if reason == HANDED_OVER:
        kind, actor = _HANDED_OVER_EVENT, f"channel:{source}"
        record_event(session, at=at, actor=actor, kind=kind, source=source, call_id=call_id)
        return False
    letter = select(Letter.id).where(Letter.source == source, Letter.external_id == call_id)
    if find_missed(session, source, call_id) is not None or session.scalar(letter) is not None:
        return False
    if _handed_over(session, source, call_id, at):
        return False
    citizen = Citizen(phone=caller) if caller else None
    session.add(
        MissedCall(
            source=source, call_id=call_id, at=at, reason=reason, citizen=citizen, called=called
        )
    )
    return True


def _handed_over(session: Session, source: str, call_id: str, at: datetime) -> bool:
    details = session.scalars(
        select(Event.detail).where(Event.kind == _HANDED_OVER_EVENT, Event.at >= at - _LONGEST_CALL)
    )
    return any(d.get("source") == source and d.get("call_id") == call_id for d in details)
