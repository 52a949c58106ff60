"""The contract between channels and intake: what arrives, and what intake answers."""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

# Where a letter's words come from when they are not typed: a voicemail's transcription, a
# fax's OCR. Such a letter is routed on that text once its job has written it.
TextSource = Literal["transcription", "ocr"]


class Channel(enum.StrEnum):
    """The medium a citizen used (渠道)."""

    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    FAX = "fax"
    WEB = "web"
    WEBCALL = "webcall"  # 网上呼叫: a call from the citizen's browser


# The channels whose letters are calls: a recording, a desk's screen pop, a callback.
CALLS = (Channel.PHONE, Channel.WEBCALL)


@dataclass(frozen=True)
class Attachment:
    filename: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Citizen:
    """The sender (来信人). Every field is PII and is stored apart from the letter."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    id_number: str | None = None
    address: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class IncomingContact:
    """One contact as a channel adapter decoded it, before it is a letter.

    ``external_id`` is the idempotency key the medium gives (Message-ID, SMSC timestamp +
    originator + concatenation reference, Twilio MessageSid, SIP Call-ID); with ``source``
    (the adapter instance) it names the contact uniquely, so a redelivery is one letter.
    """

    channel: Channel
    source: str
    external_id: str
    received_at: datetime
    citizen: Citizen = field(default_factory=Citizen)
    subject: str = ""
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    category: str | None = None
    # The district the citizen chose (the web form); routing otherwise finds it in the text.
    district: str | None = None
    anonymous: bool = False
    confidential: bool = False
    # Whether the citizen lets the hotline publish the letter and its reply (选登); None where
    # the medium did not ask.
    publish_consent: bool | None = None
    # Where the problem is, (latitude, longitude) in WGS84, where the medium gives it (Open311).
    location: tuple[float, float] | None = None
    # Background work the letter needs once stored, e.g. "ocr" for fax pages; queued in
    # the letter's own transaction so it exists exactly when the letter does.
    jobs: tuple[str, ...] = ()
    # Set when the citizen's words are still to be read off the attachments (a voicemail's
    # recording, a fax's pages) by one of ``jobs``: the subject and text are then the medium's
    # labels, not the citizen's words, and routing waits for that job.
    text_source: TextSource | None = None
    # The medium's own bytes as they came (an SMS's PDUs), kept for inspection; never shown.
    raw: str = ""

    def __post_init__(self) -> None:
        if not self.source or not self.external_id:
            raise ValueError("a contact needs a source and an external_id")
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


# PostgreSQL's text type cannot hold U+0000 (SQLite can): a NUL a sender slipped in would
# make the letter fail to store on one database and not the other.
NUL, NUL_SHOWN = "\x00", "\ufffd"


def storable(contact: IncomingContact) -> IncomingContact:
    """The contact with every NUL in the text a database keeps shown as U+FFFD (�); the
    original stays in ``raw`` (sealed at rest, so any character is safe there). Every
    contact passes here: the common case costs one scan of its strings, no copies."""
    fields = ("external_id", "subject", "text", "category", "district")
    names = [f for a in contact.attachments for f in (a.filename, a.media_type)]
    texts = [getattr(contact, name) or "" for name in fields]
    if not any(NUL in text for text in (*texts, *names)):
        return contact

    def shown(text: str) -> str:
        return text.replace(NUL, NUL_SHOWN)

    files = tuple(
        replace(a, filename=shown(a.filename), media_type=shown(a.media_type))
        for a in contact.attachments
    )
    cleaned: dict[str, Any] = {
        name: shown(value) for name in fields if (value := getattr(contact, name))
    }
    return replace(contact, **cleaned, attachments=files, raw=contact.raw or contact.text)


@dataclass(frozen=True)
class Accepted:
    """What intake answers once the contact is durable (stored or spooled).

    A channel may acknowledge its medium as soon as it holds one of these.
    ``tracking_number`` is None only when the contact went to the outage spool.
    """

    tracking_number: str | None
    created: bool
    spooled: bool = False
    verification_code: str | None = None


Accept = Callable[[IncomingContact], Coroutine[Any, Any, Accepted]]


@dataclass(frozen=True)
class MissedCallEntry:
    """漏接回拨: a call that ended with no letter, for an agent to call back. Like a contact,
    stored now or spooled while the database is down; one per (source, call_id)."""

    source: str
    call_id: str
    at: datetime
    reason: str  # hung up in the menu, a recording too short to be a message, ...
    caller: str | None
    called: str | None


# What a phone channel calls when a call ends with no letter: (call id, caller, called,
# reason). It never raises: a callback entry must not fail the call (or end a worker).
RecordMissed = Callable[[str, str | None, str | None, str], None]
# The name of a call's recording (both sides of a seat's talk) among a letter's files.
CALL_RECORDING = "call-recording.wav"
# A file for a letter already stored (source, external_id, the file): False if there is no
# such letter; StoreUnavailable while the database is down. A call's recording after it.
AttachFile = Callable[[str, str, Attachment], bool]


class ChannelAdapter(Protocol):
    """What every channel is to the gateway: something that starts and stops."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
