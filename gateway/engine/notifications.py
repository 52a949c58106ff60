"""The receipt intake queues with the letter when routing is off: no screening will decide
first, so it says only that the letter was received (gateway/core/workflow/citizen.py
sends the one receipt after screening when routing is on)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.contract.config import Config
from gateway.contract.contact import Channel, IncomingContact
from gateway.core.messages import queue_message
from gateway.core.workflow.citizen import ACCEPTED, Media, email_receipt, sms_receipt
from gateway.engine.intake import StoredLetter
from store.phones import is_mobile


def media_of(config: Config) -> Media:
    """The media the gateway has a sender for."""
    twilio = config.channels.twilio
    return Media(
        email=config.outgoing_mail.enabled,
        sms=config.channels.gsm.enabled or (twilio.enabled and twilio.sms_route),
    )


class Receipts:
    """Queues a receipt in the letter's own transaction, on the channel the citizen used,
    for the media that have a sender configured."""

    def __init__(self, email: bool, sms: bool) -> None:
        self.email = email
        self.sms = sms

    def __call__(
        self, session: Session, letter: StoredLetter, contact: IncomingContact, at: datetime
    ) -> None:
        citizen = contact.citizen
        number, code = letter.tracking_number, letter.verification_code
        if self.email and contact.channel is Channel.EMAIL and citizen.email:
            subject, body = email_receipt(number, code, letter.subject, ACCEPTED)
            payload = {"subject": subject, "body": body}
            queue_message(session, "email", letter.id, citizen.email, payload, at)
        elif self.sms and contact.channel is Channel.SMS and is_mobile(citizen.phone or ""):
            payload = {"body": sms_receipt(number, code, "")}
            queue_message(session, "sms", letter.id, citizen.phone or "", payload, at)
