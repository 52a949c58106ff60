"""What the citizen is told (a rejection, an extension, a reply), on the letter's own channel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.core.messages import queue_message
from store.models import Letter


def tell_citizen(
    session: Session, letter: Letter, text: str, clock: Callable[[], datetime]
) -> None:
    """On the letter's own channel: SMS, e-mail, or a callback for an agent (phone)."""
    citizen = letter.citizen
    if citizen is None:
        return
    subject = f"【12345市民热线】关于您的来信 {letter.tracking_number} 的答复"
    if letter.channel == "email" and citizen.email:
        queue_message(
            session,
            "email",
            letter.id,
            citizen.email,
            {"subject": subject, "body": text},
            clock(),
        )
    elif letter.channel in ("sms", "web", "fax") and citizen.phone:
        queue_message(
            session,
            "sms",
            letter.id,
            citizen.phone,
            {"body": f"【12345市民热线】{letter.tracking_number}：{text}"},
            clock(),
        )
    elif citizen.phone:
        queue_message(
            session,
            "callback",
            letter.id,
            citizen.phone,
            {"body": text},
            clock(),
            deliver=False,
        )
