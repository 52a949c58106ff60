"""Intake: every contact becomes exactly one durable letter before any channel acknowledges it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from gateway import tracking
from gateway.contact import Accepted, IncomingContact
from gateway.errors import StoreUnavailable
from gateway.logs import log_event
from gateway.metrics import Metrics
from gateway.spool import Spool
from store import jobs, letters
from store.attachments import AttachmentStore, StoredFile
from store.db import is_outage
from store.models import Attachment, Citizen, Event, Letter

log = logging.getLogger(__name__)

# Queues the citizen's receipt in the letter's transaction (gateway.notifications).
Receipts = Callable[[Session, Letter, IncomingContact, datetime], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Intake:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        files: AttachmentStore,
        spool: Spool,
        metrics: Metrics,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
        receipts: Receipts | None = None,
        jobs_queued: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.spool = spool
        self.metrics = metrics
        self.zone = zone
        self.clock = clock
        self.receipts = receipts
        self.jobs_queued = jobs_queued

    async def accept(self, contact: IncomingContact) -> Accepted:
        """Store the contact, or spool it while the database is down. For channels whose
        sender cannot be asked to resend (a modem's SIM, a finished call)."""
        return await asyncio.to_thread(self.accept_sync, contact)

    async def accept_or_refuse(self, contact: IncomingContact) -> Accepted:
        """Store the contact or raise StoreUnavailable, for senders that retry (SMTP 451)."""
        return await asyncio.to_thread(self.store, contact)

    def accept_sync(self, contact: IncomingContact) -> Accepted:
        try:
            return self.store(contact)
        except StoreUnavailable:
            self.spool.put(contact)
            log_event(
                log,
                "intake.spooled",
                logging.WARNING,
                source=contact.source,
                external_id=contact.external_id,
            )
            return Accepted(tracking_number=None, created=False, spooled=True)

    def store(self, contact: IncomingContact) -> Accepted:
        """One letter per (source, external_id), committed before this returns."""
        try:
            try:
                return self._store(contact)
            except sa_exc.DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # The pool held a connection the server had dropped (a restart, a failover);
                # the pool is now emptied, so one more try runs on a fresh connection.
                return self._store(contact)
        except sa_exc.SQLAlchemyError as exc:
            if is_outage(exc):
                self.metrics.intake_failures.labels(contact.channel.value, "database").inc()
                raise StoreUnavailable(
                    str(exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc)
                ) from exc
            self.metrics.intake_failures.labels(contact.channel.value, "error").inc()
            raise
        except OSError:
            self.metrics.intake_failures.labels(contact.channel.value, "files").inc()
            raise

    def _store(self, contact: IncomingContact) -> Accepted:
        # Files first, outside the transaction: an unreferenced file is harmless, a row
        # pointing at a missing file is not. A redelivery rewrites nothing (same names).
        stored_files = [self.files.put(a.data) for a in contact.attachments]
        try:
            # No look-up first: the unique (source, external_id) decides, in one round trip
            # less; a redelivery costs a rolled-back transaction instead.
            with self.sessions.begin() as session:
                letter = self._insert(session, contact, stored_files)
        except sa_exc.IntegrityError:
            # This contact is stored already (a redelivery, or a concurrent one won).
            with self.sessions() as session:
                found = letters.find_by_external_id(session, contact.source, contact.external_id)
            if found is None:
                raise
            return self._redelivered(contact, found)
        self.metrics.letters_received.labels(contact.channel.value).inc()
        if self.jobs_queued is not None:
            self.jobs_queued()
        log_event(
            log,
            "intake.stored",
            tracking_number=letter.tracking_number,
            channel=contact.channel.value,
            source=contact.source,
        )
        return Accepted(
            tracking_number=letter.tracking_number,
            created=True,
            verification_code=letter.verification_code,
        )

    def _insert(
        self, session: Session, contact: IncomingContact, stored_files: list[StoredFile]
    ) -> Letter:
        day = contact.received_at.astimezone(self.zone).date()
        sequence = letters.next_sequence(session, f"{day:%Y%m%d}")
        c = contact.citizen
        citizen = Citizen(
            name=c.name,
            phone=c.phone,
            email=c.email,
            id_number=c.id_number,
            address=c.address,
            ip=c.ip,
        )
        letter = Letter(
            tracking_number=tracking.tracking_number(day, sequence),
            verification_code=tracking.verification_code(),
            channel=contact.channel.value,
            source=contact.source,
            external_id=contact.external_id,
            received_at=contact.received_at,
            status="received",
            category=contact.category,
            subject=contact.subject,
            text=contact.text,
            anonymous=contact.anonymous,
            confidential=contact.confidential,
            citizen=citizen,
            attachments=[
                Attachment(
                    filename=a.filename, media_type=a.media_type, size=f.size, sha256=f.sha256
                )
                for a, f in zip(contact.attachments, stored_files, strict=True)
            ],
        )
        letter.events.append(
            Event(
                at=self.clock(),
                actor=f"channel:{contact.source}",
                kind="received",
                detail={"channel": contact.channel.value, "attachments": len(stored_files)},
            )
        )
        session.add(letter)
        session.flush()
        for kind in contact.jobs:
            jobs.enqueue(session, kind, letter_id=letter.id, at=self.clock())
        if self.receipts is not None:
            self.receipts(session, letter, contact, self.clock())
        return letter

    def _redelivered(self, contact: IncomingContact, letter: Letter) -> Accepted:
        self.metrics.duplicates.labels(contact.channel.value).inc()
        return Accepted(tracking_number=letter.tracking_number, created=False)

    def drain_spool(self) -> int:
        return self.spool.drain(self.store)
