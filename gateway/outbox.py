"""Outbound messages: written in the transaction of their cause, delivered by a job."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage

from sqlalchemy.orm import Session, sessionmaker

from gateway.config import OutgoingMailConfig
from gateway.workers import GiveUp, Handler
from store import jobs
from store.letters import record_event
from store.models import Job, Letter, OutboxMessage

DELIVER = "deliver"


def queue_email(
    session: Session, letter_id: int, to: str, subject: str, body: str, at: datetime
) -> OutboxMessage:
    message = OutboxMessage(
        kind="email",
        letter_id=letter_id,
        destination=to,
        status="pending",
        attempts=0,
        payload={"subject": subject, "body": body},
        next_attempt_at=at,
        created_at=at,
    )
    session.add(message)
    session.flush()
    jobs.enqueue(session, DELIVER, letter_id=letter_id, payload={"outbox_id": message.id}, at=at)
    return message


class Mailer:
    """Sends through the configured relay; a refusal is final, a failure to connect is not."""

    def __init__(self, settings: OutgoingMailConfig) -> None:
        self.settings = settings

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
            raise GiveUp(f"relay refused the recipient: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise GiveUp(f"relay refused the mail: {exc.smtp_code} {exc.smtp_error!r}") from exc
            raise


class DeliveryHandler(Handler):
    kind = DELIVER

    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer,
        clock: Callable[[], datetime],
        domain: str,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.clock = clock
        self.domain = domain

    def run(self, job: Job) -> None:
        with self.sessions() as session:
            message = session.get(OutboxMessage, job.payload["outbox_id"])
            if message is None or message.status == "sent":
                return
            if message.kind != "email":
                raise GiveUp(f"no sender for outbox kind {message.kind!r} yet")
            to, payload = message.destination, dict(message.payload)
        message_id = f"<outbox-{message.id}@{self.domain}>"
        self.mailer.send(to, payload["subject"], payload["body"], message_id)
        with self.sessions.begin() as session:
            current = session.get(OutboxMessage, message.id)
            assert current is not None
            current.status, current.sent_at = "sent", self.clock()
            current.attempts = job.attempts
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
            record_event(
                session,
                at=self.clock(),
                actor="outbox",
                kind="notify_failed",
                letter=session.get(Letter, message.letter_id),
                outbox=message.id,
                error=error,
            )
