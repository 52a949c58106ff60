"""What an operator's call desk shows, read from the store and the call queue: the seat and
its state, whether its phone is registered, the call ringing or talking at it, that call's
letter (stored by the SIP worker when the seat answers, ``external_id`` = the queue's call
id) and the caller's earlier letters, found by the keyed hash of their number.

The same for the page and its event stream (gateway/frontends/console/desk_events.py), so
both show one thing; it only reads, except ``take_notices``, which takes the queue's actions
for the console onto the audit log. The caller is shown as the access policy says (masked to
an operator until revealed on the letter's page, with a reason, audited).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, joinedload, sessionmaker

from gateway.contract.config import Config
from gateway.contract.contact import CALLS
from gateway.contract.logs import log_event
from gateway.contract.redaction import scrub
from gateway.core import acd
from gateway.core.access import citizen_view, file_shown, sight, visible_to
from gateway.core.callqueue import CallQueue
from gateway.core.duplicates import phone_hashes
from gateway.frontends.console.accounts import Staff
from gateway.frontends.console.scope import viewer
from store.letters import record_event
from store.models import Attachment, CallQueueAction, Citizen, Letter, QueuedCall, Seat
from store.pii_rotation import old_phone_forms

log = logging.getLogger(__name__)
HISTORY = 10  # the caller's newest earlier letters shown
REGISTRAR_SECONDS = 1.0  # Kamailio answers its FIFO in milliseconds; a stuck one is 未知
# Letters the operator still writes during or after the call (before it is dispatched).
RECORDABLE = ("received", "triage")
# How far back the desk looks for the seat's last call, to finish writing it (a shift).
WRAP_UP_WINDOW = timedelta(hours=12)
Registrar = Callable[[], set[str] | None]  # the registered seats; None: not known here


Phase = Literal["ringing", "talking", "ended"]


@dataclass(frozen=True)
class Call:
    """The call at the seat: ringing (the caller waits for the seat to pick up), talking, or
    ended with its letter still to be written or handled (the operator's wrap-up)."""

    call_id: str
    phase: Phase
    queued: QueuedCall | None  # when they joined the queue, how long they waited
    letter: Letter | None  # stored once the seat answers
    caller: str | None  # their number as this reader may see it
    history: list[dict[str, Any]]
    recordings: tuple[Attachment, ...] = ()  # the talk's, attached once the call ended


@dataclass(frozen=True)
class SeatView:
    seat: Seat | None  # None: this operator has no seat
    registered: bool | None  # None: 未知 (no registrar here, or it did not answer)
    paused_until: datetime | None  # marked not answering until then (the queue's pause)
    call: Call | None

    def key(self) -> Hashable:
        """What changes the page: the stream sends the panel again only when this does."""
        seat, call = self.seat, self.call
        letter = call.letter if call else None
        return (
            (seat.username, seat.state, seat.state_since) if seat else None,
            self.registered,
            self.paused_until,
            (call.call_id, call.phase, len(call.history)) if call else None,
            (letter.id, letter.status, letter.subject, letter.category) if letter else None,
            tuple(file.id for file in call.recordings) if call else (),
        )


def queue_for(
    config: Config, sessions: sessionmaker[Session], clock: Callable[[], datetime]
) -> CallQueue:
    """The console's handle on the queue the SIP workers share (it only reads it and takes
    the actions addressed to the console)."""
    return CallQueue.configured(sessions, config.acd, clock)


def kamailio_registrar(config: Config) -> Registrar:
    """Which seats' phones are registered, asked of this node's Kamailio, where it runs
    (channels.sip.workers > 1 with seats.registrar); elsewhere always None (未知)."""
    sip = config.channels.sip
    if not (sip.enabled and sip.workers > 1 and config.seats.registrar):
        return lambda: None
    # Imported here: only a node that runs Kamailio asks it.
    from channels.sip.registrations import RegistrarUnavailable, registered_seats

    def registered() -> set[str] | None:
        try:
            return registered_seats(sip.kamailio.run_dir, REGISTRAR_SECONDS)
        except (RegistrarUnavailable, OSError):
            return None

    return registered


def seat_of(db: Session, staff: Staff) -> Seat | None:
    return db.scalar(select(Seat).where(Seat.user_id == staff.user_id))


def last_answered(db: Session, seat: str, now: datetime) -> str | None:
    """The seat's latest call that ended within the wrap-up window (by the join time's
    index; the seat's calls are few among them)."""
    return db.scalar(
        select(QueuedCall.call_id)
        .where(QueuedCall.joined_at >= now - WRAP_UP_WINDOW, QueuedCall.seat == seat)
        .where(QueuedCall.outcome == "answered", QueuedCall.ended_at.is_not(None))
        .order_by(QueuedCall.ended_at.desc(), QueuedCall.id.desc())
        .limit(1)
    )


def seat_view(
    db: Session,
    staff: Staff,
    state: acd.QueueState,
    registered: set[str] | None,
    now: datetime,
    ended: Callable[[str], str | None],
) -> SeatView:
    """``ended``: the seat's last call that has ended, for its wrap-up (asked only when no
    call rings or talks at the seat)."""
    seat = seat_of(db, staff)
    if seat is None:
        return SeatView(None, None, None, None)
    queued = next((s for s in state.seats if s.seat_id == seat.username), None)
    paused = None
    if queued is not None and queued.paused_until is not None:
        until = datetime.fromtimestamp(queued.paused_until, UTC)
        paused = until if until > now else None
    ring = next((r for r in state.ringing if r.seat_id == seat.username), None)
    if queued is not None and queued.talking is not None:
        call: Call | None = _call(db, staff, queued.talking, "talking")
    elif ring is not None:
        call = _call(db, staff, ring.call_id, "ringing")
    elif (last := ended(seat.username)) is not None:
        call = _call(db, staff, last, "ended")
        # Shown while its letter is still the desk's to write or dispatch.
        if call.letter is None or call.letter.status not in RECORDABLE:
            call = None
    else:
        call = None
    known = None if registered is None else seat.username in registered
    return SeatView(seat, known, paused, call)


def call_letter(db: Session, call_id: str) -> Letter | None:
    """The letter the SIP worker stored for this call (its dialog key is the idempotency
    key, so there is one at most per source; the newest should two sources share one)."""
    return db.scalars(
        select(Letter)
        .where(Letter.external_id == call_id, Letter.channel.in_(CALLS))
        .options(joinedload(Letter.citizen))
        .order_by(Letter.id.desc())
        .limit(1)
    ).first()


def _call(db: Session, staff: Staff, call_id: str, phase: Phase) -> Call:
    queued = db.scalar(select(QueuedCall).where(QueuedCall.call_id == call_id))
    letter = call_letter(db, call_id)
    if letter is None:
        return Call(call_id, phase, queued, None, None, [])
    reader = viewer(staff)
    seen = citizen_view(letter.citizen, sight(letter, reader), ("phone",))
    # As the letter page lists them: a recording is the citizen's voice, shown as it allows.
    recordings = tuple(
        file
        for file in letter.attachments
        if file.media_type.startswith("audio/") and file_shown(letter, file.media_type, reader)
    )
    return Call(
        call_id,
        phase,
        queued,
        letter,
        seen["phone"] if seen else None,
        earlier_letters(db, staff, letter),
        recordings,
    )


def earlier_letters(db: Session, staff: Staff, letter: Letter) -> list[dict[str, Any]]:
    """The caller's other letters, newest first: citizens with the same number's keyed hash
    (under every key while a rotation runs, and the old form until `hotline pii rotate`
    redid it), as gateway/core/duplicates.py finds the same citizen."""
    phone = letter.citizen.phone if letter.citizen else None
    if not phone:
        return []
    hashes = phone_hashes(db, [phone], old_phone_forms(db.connection()))
    if not hashes:
        return []
    rows = db.execute(
        select(
            Letter.tracking_number,
            Letter.received_at,
            Letter.channel,
            Letter.category,
            Letter.status,
            Letter.subject,
        )
        .join(Citizen, Letter.citizen_id == Citizen.id)
        .where(Citizen.phone_hash.in_(hashes), Letter.id != letter.id)
        .where(visible_to(viewer(staff)))
        .order_by(Letter.received_at.desc(), Letter.id.desc())
        .limit(HISTORY)
    ).all()
    return [
        {
            "number": row.tracking_number,
            "received_at": row.received_at,
            "channel": row.channel,
            "category": row.category,
            "status": row.status,
            # As the inbox lists subjects: no contact detail's shape in them.
            "subject": scrub(row.subject or ""),
        }
        for row in rows
    ]


def take_notices(
    queue: CallQueue, db: Session, writes: sessionmaker[Session], now: datetime
) -> int:
    """The queue's actions for the console (``SeatNotAnswering``), taken once and put on
    the audit log, where every desk and node reads them: whichever desk's stream polls
    first takes them. A cheap read first: most polls find none and take no write lock."""
    if not db.scalar(select(exists().where(CallQueueAction.owner.is_(None)))):
        return 0
    taken = queue.take(None)
    notices = [a for a in taken if isinstance(a, acd.SeatNotAnswering)]
    for other in taken:
        if not isinstance(other, acd.SeatNotAnswering):  # a call's whose worker is gone
            log_event(log, "console.queue_action_ignored", kind=type(other).__name__)
    with writes.begin() as session:
        for notice in notices:
            record_event(
                session,
                at=now,
                actor="acd",
                kind="console.seat_not_answering",
                seat=notice.seat_id,
                until=datetime.fromtimestamp(notice.until, UTC).isoformat(),
            )
    return len(notices)
