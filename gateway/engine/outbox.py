"""Outbound messages: written in the transaction of their cause, delivered by a job."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable, Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import OutgoingMailConfig
from gateway.contract.kinds import DELIVER, DELIVER_SMS
from gateway.contract.redaction import mask
from gateway.engine.workers import GiveUp, Handler
from store.letters import record_event
from store.models import Job, Letter, OutboxMessage
from store.outbox import purge, seal
from store.pii import keyring_of

# What sends one kind of outbox message: (destination, payload, stable message id) in,
# whatever is worth keeping about the sending (a modem, message references) out.
Sender = Callable[[str, Mapping[str, Any], str], Mapping[str, Any] | None]


def delivery_handlers(
    sessions: sessionmaker[Session],
    senders: Mapping[str, Sender],
    clock: Callable[[], datetime],
    domain: str,
) -> dict[str, Handler]:
    """One handler for both delivery kinds: SMS in a lane of its own (gateway.contract.kinds)."""
    handler = DeliveryHandler(sessions, senders, clock, domain)
    return {DELIVER: handler, DELIVER_SMS: handler}


class Mailer:
    """Sends through the configured relay; a refusal is final, a failure to connect is not."""

    def __init__(self, settings: OutgoingMailConfig) -> None:
        self.settings = settings

    def deliver(self, to: str, payload: Mapping[str, Any], message_id: str) -> None:
        self.send(to, str(payload["subject"]), str(payload["body"]), message_id)

    def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["From"] = Address(s.from_name, addr_spec=s.from_address)
        mail["To"] = to
        mail["Subject"] = subject
        # Stable per outbox row, so a retry after a lost answer is recognisably the same mail.
        mail["Message-ID"] = message_id
        mail.set_content(body, charset="utf-8")
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds) as relay:
                if s.starttls:
                    relay.starttls(context=ssl.create_default_context())
                if s.username and s.password:
                    relay.login(s.username, s.password)
                relay.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            # Not the address itself: this error is kept in the history and logged.
            refusals = "; ".join(f"{code} {reason!r}" for code, reason in exc.recipients.values())
            raise GiveUp(f"relay refused the recipient: {mask(refusals)}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise GiveUp(f"relay refused the mail: {exc.smtp_code} {exc.smtp_error!r}") from exc
            raise


class DeliveryHandler(Handler):
    kind = DELIVER
    # A message to the citizen or a department belongs in the letter's history; plumbing
    # to integrators (webhooks) is recorded on its outbox row only.
    history = True

    def __init__(
        self,
        sessions: sessionmaker[Session],
        senders: Mapping[str, Sender],
        clock: Callable[[], datetime],
        domain: str,
    ) -> None:
        self.sessions = sessions
        self.senders = senders
        self.clock = clock
        self.domain = domain

    def run(self, job: Job) -> None:
        with self.sessions() as session:
            message = session.get(OutboxMessage, job.payload["outbox_id"])
            if message is None or message.status == "sent":
                return
            sender = self.senders.get(message.kind)
            if sender is None:
                raise GiveUp(f"no sender is configured for {message.kind} messages")
            to, payload = message.destination, dict(message.payload)
        message_id = f"<outbox-{message.id}@{self.domain}>"
        sent = sender(to, payload, message_id)
        with self.sessions.begin() as session:
            current = session.get(OutboxMessage, message.id)
            assert current is not None
            current.status, current.sent_at = "sent", self.clock()
            current.attempts = job.attempts
            if sent:
                current.payload = {**current.payload, "sent": dict(sent)}
            purge(current, keyring_of(session.get_bind().dialect))  # docs/privacy.md
            if not self.history:
                return
            record_event(
                session,
                at=self.clock(),
                actor="outbox",
                kind="notified",
                letter=session.get(Letter, current.letter_id),
                outbox=current.id,
                medium=current.kind,
            )

    def gave_up(self, job: Job, error: str) -> None:
        with self.sessions.begin() as session:
            message = session.get(OutboxMessage, job.payload["outbox_id"])
            if message is None:
                return
            message.status, message.last_error, message.attempts = "failed", error, job.attempts
            seal(message, keyring_of(session.get_bind().dialect))  # a webhook may be replayed
            record_event(
                session,
                at=self.clock(),
                actor="outbox",
                kind="notify_failed",
                letter=session.get(Letter, message.letter_id),
                outbox=message.id,
                error=error,
            )


class DeliveryReports:
    """Records a network's delivery report (SMS-STATUS-REPORT) on the SMS it concerns."""

    # The last sent SMS to search: a report names only the modem and a reference (0-255).
    RECENT = 500

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock

    async def __call__(self, modem: str, reference: int, status: int) -> None:
        await asyncio.to_thread(self.record, modem, reference, status)

    def record(self, modem: str, reference: int, status: int) -> bool:
        # TP-Status (TS 23.040 §9.2.3.15): 0x00-0x1F delivered, 0x20-0x3F still trying,
        # 0x40 and above failed for good.
        outcome = "delivered" if status < 0x20 else "trying" if status < 0x40 else "undelivered"
        with self.sessions.begin() as session:
            recent = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "sms", OutboxMessage.status.in_(["sent", "trying"]))
                .order_by(OutboxMessage.id.desc())
                .limit(self.RECENT)
            )
            for message in recent:
                sent = message.payload.get("sent", {})
                if sent.get("modem") == modem and reference in sent.get("references", []):
                    at, actor = self.clock(), f"modem:{modem}"
                    record_delivery(session, message, outcome, at, actor, status=status)
                    return True
        return False

    def record_status(self, outbox_id: int, outcome: str, actor: str, **detail: Any) -> bool:
        """A report naming the SMS by its outbox row (Twilio's status callback carries the
        id it was sent with); False when there is no such SMS or nothing changed."""
        with self.sessions.begin() as session:
            message = session.get(OutboxMessage, outbox_id)
            if message is None or message.kind != "sms" or message.status == outcome:
                return False
            record_delivery(session, message, outcome, self.clock(), actor, **detail)
            return True


def record_delivery(
    session: Session,
    message: OutboxMessage,
    outcome: str,
    at: datetime,
    actor: str,
    **detail: Any,
) -> None:
    """What the network says became of a sent message, on its row and in the history."""
    message.status = outcome
    record_event(
        session,
        at=at,
        actor=actor,
        kind="delivery_report",
        letter=session.get(Letter, message.letter_id),
        outbox=message.id,
        outcome=outcome,
        **detail,
    )
