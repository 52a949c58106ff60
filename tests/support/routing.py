"""Letters through intake and the real job queue to the routing core, as `hotline serve`
wires them: intake queues "route", a text job (transcription, OCR) queues it again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from channels.mail.fax import as_fax
from gateway.contract.config import DeadlinesConfig, FaxConfig, JobsConfig, OcrConfig, SttConfig
from gateway.contract.contact import Attachment, Channel, IncomingContact
from gateway.contract.kinds import ROUTE, TRANSCRIBE
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.engine.dispatch import RouteHandler
from gateway.engine.ocr import OcrHandler
from gateway.engine.workers import Handler, JobRunner
from ivr.call_letters import call_letter
from ivr.stt import Transcript, Word
from ivr.transcription import TranscribeHandler
from store.db import make_sessionmaker
from store.jobs import JobQueue
from store.models import Assignment, Citizen, Department, Event, Job, Letter
from tests.conftest import SHANGHAI, Parts
from tests.gateway.test_workflow import MONDAY, ROUTING, Clock
from tests.support.faxes import fax_tiff

CALLER = "+8613800138000"


@dataclass(frozen=True)
class Routed:
    """A letter as routing left it, with who it came from."""

    status: str
    category: str | None
    district: str | None
    duplicate_of: str | None
    departments: tuple[str, ...]
    text_pending: bool
    phone: str | None
    events: tuple[str, ...]


@dataclass
class Switchboard:
    parts: Parts
    engine: Engine
    clock: Clock = field(default_factory=lambda: Clock(MONDAY))
    serial: int = 0

    def __post_init__(self) -> None:
        self.parts.intake.clock = self.clock
        self.parts.intake.standing_jobs = (ROUTE,)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), self.clock)
        with self.sessions.begin() as session:
            self.workflow.sync_departments(session)

    def voicemail(self, recording: bytes, category: str | None = None, caller: str = CALLER) -> int:
        """A call's voicemail as the SIP and Twilio channels store it; its letter id."""
        self.serial += 1
        self.clock.now += timedelta(minutes=5)
        contact = call_letter(
            "sip-1",
            f"call-{self.serial}@10.0.0.1;from-tag={self.serial}",
            self.clock.now,
            caller,
            category,
            voicemail=True,
            attachments=(Attachment("voicemail.wav", "audio/wav", recording),),
            jobs=(TRANSCRIBE,),
        )
        return self.store(contact)

    def fax(self, pages: list[str]) -> int:
        """A fax as its server mails it: the same cover for every fax from the number."""
        self.serial += 1
        self.clock.now += timedelta(minutes=5)
        mail = IncomingContact(
            channel=Channel.EMAIL,
            source="mail-1",
            external_id=f"<fax-{self.serial}@faxserver.local>",
            received_at=self.clock.now,
            subject="Fax from 0831-2345678",
            text="You have received a 2 page fax.",
            attachments=(Attachment("fax.tif", "image/tiff", fax_tiff(pages)),),
        )
        headers = Message()
        headers["X-Fax-Caller-ID"] = "0831-2345678"
        return self.store(as_fax(mail, headers, FaxConfig()))

    def transcribe(self, letter_id: int, text: str) -> None:
        """The transcription job of this letter finishing with these words, through the
        job's own code from the recogniser's result on (tests/ivr runs the real Vosk path)."""
        queue = JobQueue(self.sessions, self.clock)
        job = queue.claim([TRANSCRIBE], "worker-1", timedelta(minutes=5))
        assert job is not None and job.letter_id == letter_id
        handler = TranscribeHandler(
            self.sessions, self.parts.files, SttConfig(), self.clock, after_text=(ROUTE,)
        )
        words = tuple(Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text))
        handler.record(job, [Transcript(text, words, 6.0)])
        queue.complete(job)

    def read_pages(self, **config: object) -> int:
        """Real OCR (Tesseract) of every fax waiting for it; how many jobs ran."""
        ocr = OcrHandler(
            self.sessions,
            self.parts.files,
            OcrConfig(**config),  # type: ignore[arg-type]
            self.clock,
            after_text=(ROUTE,),
        )
        return self.run({"ocr": ocr}, max_attempts=1)

    def store(self, contact: IncomingContact) -> int:
        number = self.parts.intake.accept_sync(contact).tracking_number
        with self.sessions() as session:
            return session.scalars(select(Letter.id).where(Letter.tracking_number == number)).one()

    def route_handler(self, awaited: Iterable[str] = ("transcription", "ocr")) -> RouteHandler:
        return RouteHandler(self.sessions, self.workflow, frozenset(awaited))

    def run(self, handlers: Mapping[str, Handler], **settings: float) -> int:
        """Run every due job of these kinds, as a node's job runner would; how many ran."""
        runner = JobRunner(
            JobQueue(self.sessions, self.clock),
            handlers,
            JobsConfig(backoff_seconds=0.001, **settings),  # type: ignore[arg-type]
        )
        ran = 0
        while runner.run_one(list(handlers)):
            ran += 1
        return ran

    def route(self, awaited: Iterable[str] = ("transcription", "ocr")) -> int:
        return self.run({ROUTE: self.route_handler(awaited)})

    def jobs(self, letter_id: int) -> list[tuple[str, str]]:
        with self.sessions() as session:
            rows = session.execute(
                select(Job.kind, Job.status).where(Job.letter_id == letter_id).order_by(Job.id)
            )
            return [(kind, status) for kind, status in rows]

    def routed(self, letter_id: int) -> Routed:
        with self.sessions() as session:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            original = letter.duplicate_of_id and session.get(Letter, letter.duplicate_of_id)
            events = session.scalars(
                select(Event).where(Event.letter_id == letter_id).order_by(Event.id)
            ).all()
            citizen = session.get(Citizen, letter.citizen_id)
            return Routed(
                status=letter.status,
                category=letter.category,
                district=letter.district,
                duplicate_of=original.tracking_number if original else None,
                departments=tuple(
                    session.scalars(
                        select(Department.code)
                        .join(Assignment, Assignment.department_id == Department.id)
                        .where(Assignment.letter_id == letter_id)
                        .order_by(Assignment.id)
                    )
                ),
                text_pending=letter.text_pending,
                phone=citizen.phone if citizen else None,
                events=tuple(e.kind for e in events),
            )

    def number(self, letter_id: int) -> str:
        with self.sessions() as session:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            return letter.tracking_number
