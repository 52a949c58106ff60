"""Canary PII: contact details planted in letters (valid ID numbers, phones, e-mails, names)
that must never come out where they do not belong — a department's view, an export, a
webhook, a log line — and a small world of letters carrying them.

``plant`` takes a report (举报) and a complaint through intake, the routing job and the
assignment exactly as `hotline serve` does, so whatever those paths log or store is seen.
"""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import DeadlinesConfig, JobsConfig
from gateway.contract.contact import Attachment, Channel, Citizen, IncomingContact
from gateway.contract.errors import TransientError
from gateway.contract.kinds import ROUTE
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.engine.dispatch import RouteHandler
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.notifications import Receipts
from gateway.engine.outbox import delivery_handlers
from gateway.engine.spool import Spool
from gateway.engine.workers import JobRunner
from store.attachments import AttachmentStore
from store.jobs import JobQueue
from store.letters import record_event
from store.models import Letter
from tests.conftest import SHANGHAI
from tests.gateway.test_workflow import ROUTING

# GB 11643-1999: the check character of the first 17 digits, weighted 2^(18-i) mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# Monday 2026-11-23 10:00 in Shanghai, a working day: assignments get a deadline.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def id_number(first17: str) -> str:
    """A resident ID number with a valid GB 11643 check character."""
    assert len(first17) == 17 and first17.isdigit()
    return first17 + _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class Canary:
    name: str
    phone: str  # 11 digits; planted as +86..., 3-4-4 with spaces or dashes, and bare
    email: str
    id_number: str
    address: str

    def citizen(self) -> Citizen:
        return Citizen(
            name=self.name,
            phone="+86" + self.phone,
            email=self.email,
            id_number=self.id_number,
            address=self.address,
        )

    @property
    def dashed(self) -> str:
        return f"{self.phone[:3]}-{self.phone[3:7]}-{self.phone[7:]}"

    @property
    def spaced(self) -> str:
        return f"{self.phone[:3]} {self.phone[3:7]} {self.phone[7:]}"

    def leaks(self, text: str) -> list[str]:
        """What of this canary ``text`` shows: the phone's digits however they are grouped
        (spaces, dashes, +86 taken out), the ID number in either case, the e-mail or its
        user part or its words, the name, the address."""
        flat = re.sub(r"[\s\-]", "", text)
        found = [v for v in (self.name, self.address) if v in text]
        user = self.email.partition("@")[0]
        # The e-mail, its user part, and that part's words (a word counter splits at dots).
        words = [self.email, user, *(w for w in re.split(r"[.+_-]", user) if len(w) >= 4)]
        found += [v for v in words if v in text.lower()]
        found += [v for v in (self.phone, self.id_number, self.id_number.lower()) if v in flat]
        return found


def voice(canary: Canary) -> bytes:
    """A voicemail that identifies its caller: a real WAV (8 kHz, 16-bit mono) whose LIST
    INFO chunk names the caller, as a recorder writes caller ID. It stands for the voice
    itself, which identifies a person and cannot be scrubbed: its bytes must never reach
    whoever may not see the citizen."""
    out = io.BytesIO()
    with wave.open(out, "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(8000)
        recording.writeframes(bytes(1600))
    caller = f"{canary.name} +86{canary.phone}".encode() + b"\0"
    caller += b"\0" * (len(caller) % 2)  # chunks are word-aligned
    info = b"INFO" + b"INAM" + len(caller).to_bytes(4, "little") + caller
    riff = out.getvalue() + b"LIST" + len(info).to_bytes(4, "little") + info
    return b"RIFF" + (len(riff) - 8).to_bytes(4, "little") + riff[8:]


def byte_leaks(data: bytes) -> list[str]:
    """The canaries a file's bytes carry (text in it read as UTF-8)."""
    return leaks(data.decode("utf-8", "replace"))


REPORTER = Canary(
    name="欧阳铁柱",
    phone="15924681357",
    email="tiezhu.ouyang@example.org",
    id_number=id_number("11010519800229461"),
    address="幸福里小区7栋302室",
)
COMPLAINANT = Canary(
    name="司马春燕",
    phone="13687654321",
    email="chunyan.sima@example.net",
    id_number=id_number("44030519921231883"),  # ends in X
    address="临江路88号2单元",
)
CANARIES = (REPORTER, COMPLAINANT)


def leaks(text: str) -> list[str]:
    return [value for canary in CANARIES for value in canary.leaks(text)]


def report_contact() -> IncomingContact:
    """举报 by SMS: the reporter signs with their name, ID number, phone and address."""
    r = REPORTER
    return IncomingContact(
        channel=Channel.SMS,
        source="modem-1",
        # As the GSM channel keys a message: originator, SMSC timestamp, part reference.
        external_id=f"86{r.phone}:26112310000032:1",
        received_at=NOW,
        citizen=r.citizen(),
        subject="",
        text=(
            f"我是{r.name}，身份证号{r.id_number}，电话{r.dashed}，邮箱{r.email}，"
            f"住{r.address}。举报翠屏区人民路工地夜间违规施工，噪音扰民，请查处。"
        ),
        attachments=(
            Attachment(f"举报人{r.phone}.jpg", "image/jpeg", b"\xff\xd8\xff" * 20),
            Attachment("voicemail.wav", "audio/wav", voice(r)),
        ),
    )


def complaint_contact() -> IncomingContact:
    c = COMPLAINANT
    return IncomingContact(
        channel=Channel.EMAIL,
        source="smtp",
        external_id=f"<complaint-1@{c.email.partition('@')[2]}>",
        received_at=NOW,
        citizen=c.citizen(),
        subject=f"投诉路灯不亮 请回电{c.phone}",
        text=(
            f"投诉：翠屏区人民路的路灯坏了三天。联系人{c.name}，电话{c.spaced}，"
            f"身份证{c.id_number}，邮箱{c.email}。"
        ),
        attachments=(Attachment(f"{c.name}拍的路灯.jpg", "image/jpeg", b"\xff\xd8\xff" * 21),),
    )


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


CLOCK = Clock()


def refusing_sender(to: str, payload: Mapping[str, Any], message_id: str) -> None:
    """An SMS or mail provider that refuses the number and says so, as Twilio does."""
    raise TransientError(f"provider said: the 'To' number {to} is not reachable")


@dataclass
class World:
    sessions: sessionmaker[Session]
    intake: Intake
    files: AttachmentStore
    workflow: Workflow
    runner: JobRunner
    clock: Clock
    report: str  # tracking numbers
    complaint: str

    def letter(self, session: Session, number: str) -> Letter:
        return session.scalars(select(Letter).where(Letter.tracking_number == number)).one()


@cache
def _workflow() -> Workflow:
    # One per run: its word segmenter takes most of a second to load.
    return Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), CLOCK)


def plant(
    sessions: sessionmaker[Session],
    root: Path,
    sender: Callable[[str, Mapping[str, Any], str], Any] = refusing_sender,
) -> World:
    """Both letters stored (with receipts queued), routed by the routing job, their receipts
    tried once, a transcript and a failed-notice event naming the reporter's number; the
    report goes to environment, the complaint to city-admin."""
    clock = CLOCK
    files = AttachmentStore(root / "attachments")
    metrics = Metrics()
    intake = Intake(
        sessions,
        files,
        Spool(root / "spool", metrics),
        metrics,
        SHANGHAI,
        clock,
        receipts=Receipts(email=True, sms=True),
        standing_jobs=(ROUTE,),
    )
    workflow = _workflow()
    runner = JobRunner(
        JobQueue(sessions, clock),
        {
            ROUTE: RouteHandler(sessions, workflow),
            **delivery_handlers(sessions, {"sms": sender, "email": sender}, clock, "h"),
        },
        JobsConfig(),
    )
    with sessions.begin() as session:
        workflow.sync_departments(session)
    report = intake.accept_sync(report_contact()).tracking_number
    complaint = intake.accept_sync(complaint_contact()).tracking_number
    assert report is not None and complaint is not None
    while runner.run_one(list(runner.handlers)):
        pass
    world = World(sessions, intake, files, workflow, runner, clock, report, complaint)
    with sessions.begin() as session:
        letter = world.letter(session, report)
        letter.transcript = f"来电人{REPORTER.name}，手机{REPORTER.spaced}，要求保密。"
        record_event(
            session,
            at=clock(),
            actor="outbox",
            kind="notify_failed",
            letter=letter,
            error=f"provider said: the 'To' number +86{REPORTER.phone} is not reachable",
        )
    return world
