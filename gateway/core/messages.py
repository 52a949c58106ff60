"""Messages to citizens and departments, queued in the transaction of their cause (a reply,
a receipt, an urge notice) and delivered later by the outbox's job (engine.outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.contract.kinds import DELIVER, DELIVER_SMS
from store import jobs
from store.models import OutboxMessage


def queue_message(
    session: Session,
    kind: str,
    letter_id: int,
    to: str,
    payload: dict[str, Any],
    at: datetime,
    deliver: bool = True,
) -> OutboxMessage:
    """Write the message and its delivery job in the caller's transaction. ``deliver``
    False leaves it for people (a callback an agent makes from the console)."""
    message = OutboxMessage(
        kind=kind,
        letter_id=letter_id,
        destination=to,
        status="pending",
        attempts=0,
        payload=payload,
        next_attempt_at=at,
        created_at=at,
    )
    session.add(message)
    session.flush()
    if deliver:
        job = DELIVER_SMS if kind == "sms" else DELIVER
        jobs.enqueue(session, job, letter_id=letter_id, payload={"outbox_id": message.id}, at=at)
    return message
