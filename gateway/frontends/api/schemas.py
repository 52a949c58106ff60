"""The shapes of the REST API (they are the OpenAPI document's schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["complaint", "help", "suggestion", "inquiry", "report", "opinion", "other"]
TextSource = Literal["transcription", "ocr"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Model):
    """RFC 9457 problem details: every error has this shape."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


class CitizenView(Model):
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None


class AttachmentView(Model):
    id: int
    filename: str
    media_type: str
    size: int
    sha256: str
    url: str


class EventView(Model):
    at: datetime
    actor: str
    kind: str
    detail: dict[str, object]


class AssignmentView(Model):
    department: str = Field(description="the department's code")
    department_name: str
    lead: bool = Field(description="true: the lead department (牵头); false: a co-department")
    reply_type: str = Field(description="time_limited, promised, joint or urgent")
    due_at: datetime | None
    status: str = Field(description="assigned, signed, promised, replied or returned")


class LetterSummary(Model):
    tracking_number: str
    channel: str
    received_at: datetime
    status: str
    awaiting_text: TextSource | None = Field(
        description="transcription: a voicemail waiting for its transcript; ocr: a fax "
        "waiting for its pages to be read. Routing waits for these words; null otherwise"
    )
    category: str | None
    subject: str
    department: str | None = Field(description="the lead department, once assigned")
    due_at: datetime | None


class LetterDetail(LetterSummary):
    text: str
    transcript: str | None = Field(
        description="the words read off a voicemail (speech-to-text) or a fax's pages (OCR)"
    )
    text_source: TextSource | None = Field(
        description="transcription or ocr when the citizen's words are the transcript (the "
        "subject and text are then the medium's labels); null for typed text"
    )
    district: str | None
    mode: str | None
    reply_type: str | None
    citizen: CitizenView | None = Field(
        description="masked unless the token has the pii scope; absent for reporters"
    )
    attachments: list[AttachmentView]
    assignments: list[AssignmentView] = Field(
        description="the departments the letter was handed to, the lead first; returned "
        "ones stay with their status"
    )
    events: list[EventView]


class Page(Model):
    items: list[LetterSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class NewCitizen(Model):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    address: str | None = Field(default=None, max_length=500)


class NewLetter(Model):
    """A letter from a partner channel (a mini-program, an agent desktop)."""

    idempotency_key: str = Field(
        min_length=1, max_length=200, description="the same key again returns the same letter"
    )
    channel: Literal["phone", "web"] = "web"
    subject: str = Field(default="", max_length=500)
    text: str = Field(min_length=1, max_length=20000)
    category: Category | None = None
    citizen: NewCitizen = NewCitizen()
    anonymous: bool = False
    confidential: bool = False


class Created(Model):
    tracking_number: str
    created: bool
    verification_code: str | None = Field(
        description="given once, when the letter is created, for the citizen only"
    )


class Action(Model):
    """A department's action on one of its letters."""

    action: Literal["sign", "reply", "interim_reply", "return", "request_extension"]
    text: str | None = Field(default=None, max_length=20000)
    reason: str | None = Field(default=None, max_length=2000)
    public: bool = False
    promised_at: datetime | None = None


class ActionResult(Model):
    tracking_number: str
    status: str
