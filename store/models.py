"""The durable schema: letters, citizens (PII apart), attachments, events, work queues."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    false,
    insert,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from store.phones import numbers_in
from store.pii import LOOKUPS, Encrypted, keyring_of, lookup_default

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
Id = BigInteger().with_variant(Integer(), "sqlite")
# The largest id either store holds; a larger number names no row (and the drivers refuse
# to bind it: OverflowError from sqlite3, NumericValueOutOfRange from PostgreSQL).
MAX_ID = 2**63 - 1


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite has no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Citizen(Base):
    """来信人: every column here is PII, kept out of the letters table and its exports, and
    encrypted at rest (store/pii.py). Look a citizen up by ``phone_hash``/``email_hash``
    (keyed hashes, filled in on insert and on an ORM update of phone or e-mail)."""

    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str | None] = mapped_column(Encrypted("citizens.name"))
    phone: Mapped[str | None] = mapped_column(Encrypted("citizens.phone"))
    email: Mapped[str | None] = mapped_column(Encrypted("citizens.email"))
    id_number: Mapped[str | None] = mapped_column(Encrypted("citizens.id_number"))
    address: Mapped[str | None] = mapped_column(Encrypted("citizens.address"))
    ip: Mapped[str | None] = mapped_column(Encrypted("citizens.ip"))
    phone_hash: Mapped[str | None] = mapped_column(
        String(64), index=True, default=lookup_default("phone")
    )
    email_hash: Mapped[str | None] = mapped_column(
        String(64), index=True, default=lookup_default("email")
    )


@event.listens_for(Citizen, "before_update")
def _rehash(_mapper: Any, connection: Any, citizen: Citizen) -> None:
    state = inspect(citizen)
    for kind in LOOKUPS:
        if state.attrs[kind].history.has_changes():
            keyring = keyring_of(connection.dialect)
            setattr(citizen, f"{kind}_hash", keyring.lookup_hash(kind, getattr(citizen, kind)))


class Letter(Base):
    """信件: one citizen contact after intake."""

    __tablename__ = "letters"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_letters_source_external_id"),
        # Duplicate candidates, newest first: the same citizen's letters and the same
        # district's (gateway/core/duplicates.py duplicate_queries).
        Index("ix_letters_citizen_received", "citizen_id", "received_at"),
        Index("ix_letters_district_received", "district", "received_at"),
        # The bulletin's volume and districts of a period, read from the index alone.
        Index(
            "ix_letters_received_figures",
            "received_at",
            "channel",
            "category",
            "status",
            "district",
            "id",  # PostgreSQL's indexes do not hold the key: the join to assignments does
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(20), unique=True)
    verification_code: Mapped[str] = mapped_column(String(12))
    channel: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    status: Mapped[str] = mapped_column(String(24), index=True, default="received")
    category: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # The words read off a voicemail (speech-to-text) or a fax's pages (OCR).
    transcript: Mapped[str | None] = mapped_column(Text)
    # "transcription" or "ocr" when the citizen's words are the transcript (a voicemail, a
    # fax): its subject and text are then the medium's labels. None: typed text.
    text_source: Mapped[str | None] = mapped_column(String(16))
    # True until that job has written the transcript or given up: routing waits for it.
    text_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Speech-to-text: mean word confidence, and each word with its timing in the audio.
    transcript_confidence: Mapped[float | None] = mapped_column(Float)
    transcript_words: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The medium's own bytes (SMS PDUs, one per line): evidence, never shown to departments;
    # PII (the sender's number is in a PDU), so encrypted at rest.
    raw: Mapped[str | None] = mapped_column(Encrypted("letters.raw"))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    # The routing core's view of the letter (gateway/core/workflow/).
    mode: Mapped[str | None] = mapped_column(String(16))
    reply_type: Mapped[str | None] = mapped_column(String(16))
    district: Mapped[str | None] = mapped_column(String(64))
    rejection: Mapped[str | None] = mapped_column(String(24))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    replied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # 回访: satisfied, mostly_satisfied (基本满意) or unsatisfied, the last answer given.
    satisfaction: Mapped[str | None] = mapped_column(String(16))
    # When the citizen was asked after the final reply (None: not yet), and when the
    # unanswered visit became an operator's callback task (once).
    visit_asked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    visit_callback_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    publish: Mapped[bool] = mapped_column(Boolean, default=False)
    # The citizen's own say on publishing (the web form asks); None: not asked.
    publish_consent: Mapped[bool | None] = mapped_column(Boolean)
    # Where the problem is (WGS84), as an Open311 client gave it; None: not given.
    latitude: Mapped[float | None] = mapped_column(Numeric(9, 6, asdecimal=False))
    longitude: Mapped[float | None] = mapped_column(Numeric(9, 6, asdecimal=False))

    citizen: Mapped[Citizen | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="letter", order_by="Attachment.id"
    )
    events: Mapped[list[Event]] = relationship(order_by="Event.id")


class LetterPhone(Base):
    """A phone number a letter's words mention ("我的电话13800138000"), for 并单 to link it
    with the same number's other letters: its keyed hash only (store/pii.py), never the
    number, under the key ``key_id`` (`hotline pii rotate` redoes the others); the letter's
    time of receipt beside it, so the newest are read from the index."""

    __tablename__ = "letter_phones"
    __table_args__ = (Index("ix_letter_phones_hash_received", "phone_hash", "received_at"),)

    letter_id: Mapped[int] = mapped_column(
        ForeignKey("letters.id", ondelete="CASCADE"), primary_key=True
    )
    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PhoneRehash(Base):
    """Rows stored before phone hashes were taken of the E.164 form (migration 0018), ids
    up to ``upto``: citizens whose ``phone_hash`` is of the old form, letters whose phones
    are not noted yet. `hotline pii rotate` redoes them, ``done_through`` as it goes, and
    deletes the row; while the citizens' row remains, lookups try the old form too."""

    __tablename__ = "phone_rehash"

    table_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    done_through: Mapped[int] = mapped_column(Id)
    upto: Mapped[int] = mapped_column(Id)


class Worded(Protocol):
    """What of a letter its phones are read from: a Letter, or a row of its columns."""

    id: int
    received_at: datetime
    subject: str
    text: str
    transcript: str | None


def note_phones(connection: Any, letters: Sequence[Worded]) -> None:
    """Note the phone numbers each letter's words mention (subject, text, transcript) as
    keyed hashes under the current key, replacing what was noted before."""
    keyring = keyring_of(connection.dialect)
    ids = [letter.id for letter in letters]
    connection.execute(delete(LetterPhone).where(LetterPhone.letter_id.in_(ids)))
    rows = [
        {
            "letter_id": letter.id,
            "phone_hash": keyring.lookup_hash("phone", number),
            "key_id": keyring.current,
            "received_at": letter.received_at,
        }
        for letter in letters
        for number in numbers_in(f"{letter.subject}\n{letter.text}\n{letter.transcript or ''}")
    ]
    if rows:
        connection.execute(insert(LetterPhone), rows)


@event.listens_for(Letter, "after_update")
def _note_phones(_mapper: Any, connection: Any, letter: Letter) -> None:
    # Noted once a letter is judged (leaves "received"): only a letter in hand is repeated,
    # and its words (a voicemail's transcript) are known by then; again if they change.
    state = inspect(letter)
    judged = "received" in (state.attrs.status.history.deleted or ())
    reworded = any(state.attrs[n].history.has_changes() for n in ("subject", "text", "transcript"))
    if letter.status != "received" and (judged or reworded):
        note_phones(connection, [letter])


class Attachment(Base):
    """A file of a letter; the bytes live content-addressed on disk under their sha256."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))

    letter: Mapped[Letter] = relationship(back_populates="attachments")


class Event(Base):
    """Append-only history: every state change and every read of PII (who, when, what)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"), index=True)
    # The department an event concerns (an urge, a return): statistics group by it.
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(48))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TrackingSequence(Base):
    """The last tracking sequence number handed out on one local calendar day."""

    __tablename__ = "tracking_sequences"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Department(Base):
    """责任机构: a government department that handles letters."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Where notices (urges, supervision) go.
    contacts: Mapped[list[str]] = mapped_column(JSON, default=list)


class Assignment(Base):
    """A letter handed to a department, with its handling mode, reply type and deadline."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_open", "status", "due_at"),
        # A letter's assignments; with what the bulletin's letters per department asks.
        Index(
            "ix_assignments_letter_figures", "letter_id", "status", "assigned_at", "department_id"
        ),
        # Statistics select a period's assignments by when they were made, and count their
        # replies from the index alone.
        Index(
            "ix_assignments_assigned_figures",
            "assigned_at",
            "status",
            "department_id",
            "due_at",
            "replied_at",
            "letter_id",
        ),
        # A department's queue: its open ones by deadline, without reading the others.
        Index("ix_assignments_department_queue", "department_id", "status", "due_at"),
        # Overdue counts: past due and replied after the period's end (or not at all).
        Index(
            "ix_assignments_overdue",
            "replied_at",
            "due_at",
            "status",
            "assigned_at",
            "department_id",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    mode: Mapped[str] = mapped_column(String(16))
    reply_type: Mapped[str] = mapped_column(String(16))
    lead: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(24), default="assigned")
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # 承诺件: the completion date the department committed to in its interim reply.
    promised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    letter: Mapped[Letter] = relationship()
    department: Mapped[Department] = relationship()


class Reply(Base):
    """An answer to the citizen: interim or final, by a department or the hotline (直办)."""

    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    # 选登: may be published; a confidential reply goes to the citizen only.
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Chase(Base):
    """A warning, urge notice or supervision issued once per assignment: the unique key
    makes the sweep safe with several gateway nodes (the second insert fails, sends
    nothing)."""

    __tablename__ = "chases"
    __table_args__ = (
        UniqueConstraint("assignment_id", "kind", name="uq_chases_assignment_kind"),
        # The supervision board starts from the urged (or supervised) ones.
        Index("ix_chases_kind_assignment", "kind", "assignment_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Job(Base):
    """A durable unit of background work (transcription, OCR, ...), claimed by one worker."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claimable", "status", "run_after"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(48))
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxMessage(Base):
    """An outbound SMS, e-mail or webhook, written in the same transaction as its cause."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "status", "next_attempt_at"),
        # Webhooks are delivered in order per (endpoint, letter).
        Index("ix_outbox_destination_letter", "destination", "letter_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"))
    destination: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class MissedCall(Base):
    """漏接回拨: a caller who hung up before leaving a message, for an agent to call back."""

    __tablename__ = "missed_calls"
    __table_args__ = (UniqueConstraint("source", "call_id", name="uq_missed_calls_source_call_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Why no letter: hung up in the menu, a recording too short to be a message, ...
    reason: Mapped[str] = mapped_column(String(32))
    # The caller's number is PII: it lives in citizens like every other contact detail.
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    called: Mapped[str | None] = mapped_column(String(64))
    called_back_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    called_back_by: Mapped[str | None] = mapped_column(String(128))

    citizen: Mapped[Citizen | None] = relationship()


class ApiToken(Base):
    """A bearer token for integrators, stored as its SHA-256 only, with its scopes."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # read, write, act, pii; a department token sees only that department's letters.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    department: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookCursor(Base):
    """How far the webhook fan-out has read the events table (one row per endpoint)."""

    __tablename__ = "webhook_cursors"

    endpoint: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # Set when the receiver answered 410 Gone: nothing more is sent until re-enabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class ConsoleUser(Base):
    """A person who works letters in the console; the password is kept as an Argon2 hash."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    # operator, supervisor, leader, department, admin
    role: Mapped[str] = mapped_column(String(16))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    department: Mapped[Department | None] = relationship()


class ConsoleSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"), index=True)
    # Every form carries it back (CSRF); a new one with every sign-in.
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[ConsoleUser] = relationship()


class Seat(Base):
    """An operator's phone seat (坐席): the SIP account the console user's phone registers
    with. Only the digest HA1, md5("username:realm:password"), is kept: what Kamailio's
    auth_db checks a REGISTER against; the password itself is shown once and never stored."""

    __tablename__ = "seats"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    # One seat per operator: the queue offers a call to a person, not to a phone.
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"), unique=True)
    realm: Mapped[str] = mapped_column(String(64))
    ha1: Mapped[str] = mapped_column(String(32))
    # signed_out, available, on_break (gateway/core/seats.py)
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    user: Mapped[ConsoleUser] = relationship()


class CallQueueRow(Base):
    """The city-wide call queue (gateway/core/callqueue.py): one row holding the ACD core's
    state as JSON. Every change locks it, so SIP workers on any node step it one at a time."""

    __tablename__ = "call_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # gateway/core/acd.py QueueState, and which worker holds each call in it.
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    owners: Mapped[dict[str, str]] = mapped_column(JSON)
    # The queue's clock never runs back: the latest time (POSIX seconds) it has handled.
    last_at: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CallQueueOwner(Base):
    """A worker holding queued calls and when it last said it was alive."""

    __tablename__ = "call_queue_owners"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)


class CallQueueAction(Base):
    """What the queue decided, waiting for the worker that holds the call (owner NULL: the
    console, e.g. a seat marked not answering); taken and deleted in id order."""

    __tablename__ = "call_queue_actions"
    __table_args__ = (Index("ix_call_queue_actions_owner_id", "owner", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QueuedCall(Base):
    """One caller's way through the queue, for the figures: wait, outcome, seat, talk time."""

    __tablename__ = "queued_calls"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), unique=True)
    priority: Mapped[str] = mapped_column(String(32))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # answered, abandoned, queue_timeout, message, lost (its worker died); NULL while queued.
    outcome: Mapped[str | None] = mapped_column(String(16))
    seat: Mapped[str | None] = mapped_column(String(32))
    waited_seconds: Mapped[float | None] = mapped_column(Float)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # unanswered: when it left
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
