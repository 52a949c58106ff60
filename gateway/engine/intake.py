"""Intake: every contact becomes exactly one durable letter before any channel acknowledges it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract import tracking
from gateway.contract.contact import (
    Accepted,
    Attachment,
    IncomingContact,
    MissedCallEntry,
    RecordMissed,
    storable,
)
from gateway.contract.errors import StoreUnavailable
from gateway.contract.logs import log_event
from gateway.contract.redaction import mask
from gateway.engine.batching import GroupCommit
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from store import jobs, letters, missed_calls
from store.attachments import AttachmentStore, StoredFile
from store.db import is_outage
from store.models import Attachment as AttachmentRow
from store.models import Letter

log = logging.getLogger(__name__)

# Queues the citizen's receipt in the letter's transaction (gateway.engine.notifications).
Receipts = Callable[[Session, "StoredLetter", IncomingContact, datetime], None]
# A contact on its way to the writer, with its files already on disk.
Pending = tuple[IncomingContact, list[StoredFile]]


@dataclass(frozen=True)
class StoredLetter:
    """What a receipt needs of a letter just inserted in the current transaction."""

    id: int
    tracking_number: str
    verification_code: str
    subject: str


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
        max_batch: int = 64,
        standing_jobs: tuple[str, ...] = (),
    ) -> None:
        """``standing_jobs`` are queued for every new letter (routing: "route")."""
        self.sessions = sessions
        self.files = files
        self.spool = spool
        self.metrics = metrics
        self.zone = zone
        self.clock = clock
        self.receipts = receipts
        self.jobs_queued = jobs_queued
        self.standing_jobs = standing_jobs
        self.writer: GroupCommit[Pending, Accepted] = GroupCommit(self._write, max_batch)

    async def accept(self, contact: IncomingContact) -> Accepted:
        """Store the contact, or spool it while the database is down. For channels whose
        sender cannot be asked to resend (a modem's SIM, a finished call)."""
        try:
            return await self.accept_or_refuse(contact)
        except StoreUnavailable:
            return await asyncio.to_thread(self._spool, contact)

    async def accept_or_refuse(self, contact: IncomingContact) -> Accepted:
        """Store the contact or raise StoreUnavailable, for senders that retry (SMTP 451)."""
        contact = storable(contact)
        with self._failures(contact):
            files = await asyncio.to_thread(self._put_files, contact) if contact.attachments else []
            # Awaited, not waited for in a thread: a busy hour's sessions all fit in one batch.
            accepted = await asyncio.wrap_future(self.writer.submit((contact, files)))
        return self._counted(contact, accepted)

    def accept_sync(self, contact: IncomingContact) -> Accepted:
        try:
            return self.store(contact)
        except StoreUnavailable:
            return self._spool(contact)

    def store(self, contact: IncomingContact) -> Accepted:
        """One letter per (source, external_id), committed before this returns."""
        contact = storable(contact)
        with self._failures(contact):
            accepted = self.writer.submit((contact, self._put_files(contact))).result()
        return self._counted(contact, accepted)

    def _put_files(self, contact: IncomingContact) -> list[StoredFile]:
        # Files first, outside the transaction: an unreferenced file is harmless, a row
        # pointing at a missing file is not. A redelivery rewrites nothing (same names).
        return [self.files.put(a.data) for a in contact.attachments]

    def _spool(self, contact: IncomingContact) -> Accepted:
        self.spool.put(contact)
        log_event(
            log,
            "intake.spooled",
            logging.WARNING,
            source=contact.source,
            # An SMS key starts with the sender's number; an e-mail's may name them.
            external_id=mask(contact.external_id),
        )
        return Accepted(tracking_number=None, created=False, spooled=True)

    @contextlib.contextmanager
    def _failures(self, contact: IncomingContact) -> Iterator[None]:
        """Count what went wrong; a database that cannot be reached is StoreUnavailable."""
        try:
            yield
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

    def _counted(self, contact: IncomingContact, accepted: Accepted) -> Accepted:
        if accepted.created:
            self.metrics.letters_received.labels(contact.channel.value).inc()
            log_event(
                log,
                "intake.stored",
                tracking_number=accepted.tracking_number,
                channel=contact.channel.value,
                source=contact.source,
            )
        else:
            self.metrics.duplicates.labels(contact.channel.value).inc()
        return accepted

    def _write(self, batch: Sequence[Pending]) -> list[Accepted | Exception]:
        """The group-commit writer: one transaction for the whole batch."""
        try:
            try:
                outcomes, queued = self._insert_batch(batch)
            except sa_exc.DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # The pool held a connection the server had dropped (a restart, a failover);
                # the pool is now emptied, so one more try runs on a fresh connection.
                outcomes, queued = self._insert_batch(batch)
        except sa_exc.IntegrityError:
            # Another node stored one of these meanwhile (PostgreSQL): one at a time, each
            # finding its own letter.
            outcomes, queued = [self._one_by_one(pending) for pending in batch], True
        # Only when a job was queued: each wake costs every lane's claim loops a write
        # transaction, which waits for (and then holds up) the next batch on SQLite.
        if self.jobs_queued is not None and queued:
            self.jobs_queued()
        return outcomes

    def _one_by_one(self, pending: Pending) -> Accepted | Exception:
        try:
            return self._insert_batch([pending])[0][0]
        except sa_exc.IntegrityError:
            with self.sessions() as session:
                found = letters.tracking_numbers_of(
                    session, [(pending[0].source, pending[0].external_id)]
                )
            number = next(iter(found.values()), None)
            if number is None:
                raise
            return Accepted(tracking_number=number, created=False)

    def _insert_batch(self, batch: Sequence[Pending]) -> tuple[list[Accepted | Exception], bool]:
        """Each contact's outcome, and whether any job (a receipt's too) was queued."""
        now = self.clock()
        with self.sessions.begin() as session:
            known = letters.tracking_numbers_of(
                session, {(c.source, c.external_id) for c, _ in batch}
            )
            # The same contact twice in one batch is one letter too.
            fresh: dict[tuple[str, str], Pending] = {}
            for contact, files in batch:
                key = (contact.source, contact.external_id)
                if key not in known and key not in fresh:
                    fresh[key] = (contact, files)
            numbers = self._number(session, [c for c, _ in fresh.values()])
            new = {
                key: self._new_letter(contact, files, numbers[key], now)
                for key, (contact, files) in fresh.items()
            }
            ids = letters.insert_letters(session, list(new.values()))
            work = [
                (kind, letter_id)
                for (contact, _), letter_id in zip(fresh.values(), ids, strict=True)
                for kind in (*contact.jobs, *self.standing_jobs)
            ]
            queued = jobs.enqueue_many(session, work, now) > 0
            for (contact, _), (key, row), letter_id in zip(
                fresh.values(), new.items(), ids, strict=True
            ):
                if self.receipts is not None:
                    stored = StoredLetter(
                        letter_id, numbers[key], row.letter["verification_code"], contact.subject
                    )
                    self.receipts(session, stored, contact, now)
            # The letters and their jobs went in as plain inserts: whatever the session
            # holds is a receipt's message (and a receipt always comes with its job).
            queued = queued or bool(session.new) or len(session.identity_map) > 0
        outcomes: list[Accepted | Exception] = []
        for contact, _ in batch:
            key = (contact.source, contact.external_id)
            if key in new and key not in known:
                known[key] = numbers[key]  # a second copy in this batch is a redelivery
                code = new[key].letter["verification_code"]
                outcomes.append(Accepted(numbers[key], created=True, verification_code=code))
            else:
                outcomes.append(Accepted(tracking_number=known[key], created=False))
        return outcomes, queued

    def _number(
        self, session: Session, contacts: list[IncomingContact]
    ) -> dict[tuple[str, str], str]:
        """Tracking numbers for new letters: one sequence block per local day."""
        by_day: dict[date, list[IncomingContact]] = {}
        for contact in contacts:
            by_day.setdefault(contact.received_at.astimezone(self.zone).date(), []).append(contact)
        numbers = {}
        for day, group in sorted(by_day.items()):
            block = letters.take_sequences(session, f"{day:%Y%m%d}", len(group))
            for contact, sequence in zip(group, block, strict=True):
                numbers[(contact.source, contact.external_id)] = tracking.tracking_number(
                    day, sequence
                )
        return numbers

    def _new_letter(
        self, contact: IncomingContact, files: list[StoredFile], number: str, now: datetime
    ) -> letters.NewLetter:
        return letters.NewLetter(
            letter={
                "tracking_number": number,
                "verification_code": tracking.verification_code(),
                "channel": contact.channel.value,
                "source": contact.source,
                "external_id": contact.external_id,
                "received_at": contact.received_at,
                "status": "received",
                "category": contact.category,
                "district": contact.district,
                "subject": contact.subject,
                "text": contact.text,
                "transcript": None,
                "text_source": contact.text_source,
                "text_pending": contact.text_source is not None,
                "raw": contact.raw or None,
                "anonymous": contact.anonymous,
                "confidential": contact.confidential,
                "publish_consent": contact.publish_consent,
                "latitude": contact.location[0] if contact.location else None,
                "longitude": contact.location[1] if contact.location else None,
            },
            citizen=dataclasses.asdict(contact.citizen),
            attachments=[
                {
                    "filename": a.filename,
                    "media_type": a.media_type,
                    "size": f.size,
                    "sha256": f.sha256,
                }
                for a, f in zip(contact.attachments, files, strict=True)
            ],
            event={
                "at": now,
                "actor": f"channel:{contact.source}",
                "kind": "received",
                "detail": {"channel": contact.channel.value, "attachments": len(files)},
            },
        )

    def drain_spool(self) -> int:
        return self.spool.drain(self.store, self.store_missed)

    def attach(self, source: str, external_id: str, file: Attachment) -> bool:
        """Add a file to the letter (source, external_id) stored earlier: a call's recording,
        made while the operator typed the letter. False if there is no such letter."""
        stored = self.files.put(file.data)  # first: a row never points at a missing file
        try:
            with self.sessions.begin() as session:
                where = (Letter.source == source, Letter.external_id == external_id)
                letter = session.scalars(select(Letter).where(*where)).one_or_none()
                if letter is None:
                    return False
                row = AttachmentRow(
                    letter_id=letter.id,
                    filename=file.filename,
                    media_type=file.media_type,
                    size=stored.size,
                    sha256=stored.sha256,
                )
                session.add(row)
                letters.record_event(
                    session,
                    at=self.clock(),
                    actor=f"channel:{source}",
                    kind="attached",
                    letter=letter,
                    filename=file.filename,
                    size=stored.size,
                )
        except sa_exc.SQLAlchemyError as exc:
            if is_outage(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise
        return True

    def missed_calls(self, source: str) -> RecordMissed:
        """The callback list as a phone channel writes it: each call that ended with no
        letter is listed now, or spooled while the database is down (drained with the
        contacts); neither fails the call."""

        def record(call_id: str, caller: str | None, called: str | None, reason: str) -> None:
            entry = MissedCallEntry(source, call_id, self.clock(), reason, caller, called)
            try:
                self.store_missed(entry)
            except StoreUnavailable:
                try:
                    self.spool.put_missed(entry)
                except OSError:
                    log.exception("missed_call.lost source=%s", source)
            except Exception:  # the call goes on; the operator sees it in the log
                log.exception("missed_call.not_recorded source=%s", source)

        return record

    def store_missed(self, entry: MissedCallEntry) -> bool:
        """List the missed call (once, and not for a call that left a letter), or raise
        StoreUnavailable."""
        try:
            with self.sessions.begin() as session:
                return missed_calls.record_missed(
                    session,
                    entry.source,
                    entry.call_id,
                    entry.at,
                    entry.reason,
                    entry.caller,
                    entry.called,
                )
        except sa_exc.SQLAlchemyError as exc:
            if is_outage(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise
