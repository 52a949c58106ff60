"""Letters as plain data: the stable JSON shape of `hotline letters ... --json` (docs/cli.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from store.models import Assignment, Event, Letter

# A letter in a list (the API's pages, the console's inbox): never its words or its citizen.
SUMMARY_COLUMNS = (
    Letter.id,
    Letter.tracking_number,
    Letter.channel,
    Letter.received_at,
    Letter.status,
    Letter.category,
    Letter.subject,
    Letter.due_at,
    # Whether a voicemail's or fax's words are still to be read (awaiting_text).
    Letter.text_source,
    Letter.text_pending,
    # Whether the citizen is hidden (access.hidden).
    Letter.anonymous,
    Letter.confidential,
)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def awaiting_text(letter: Any) -> str | None:
    """Where a voicemail's or fax's words will come from (transcription, ocr) while routing
    waits for them, else None. ``letter`` is a Letter or a row with its columns."""
    return letter.text_source if letter.text_pending else None


def _basics(letter: Letter) -> dict[str, Any]:
    return {
        "tracking_number": letter.tracking_number,
        "channel": letter.channel,
        "source": letter.source,
        # external_id stays out: a medium's key often carries PII (an SMS originator).
        "received_at": iso_utc(letter.received_at),
        "status": letter.status,
        "awaiting_text": awaiting_text(letter),
        "category": letter.category,
        "subject": letter.subject,
    }


def letter_summary(letter: Letter) -> dict[str, Any]:
    return {**_basics(letter), "attachments": len(letter.attachments)}


def letter_detail(letter: Letter, assignments: Sequence[Assignment] = ()) -> dict[str, Any]:
    """``assignments``: the letter's, as access.letter_assignments lists them."""
    return {
        **_basics(letter),
        "text": letter.text,
        "transcript": letter.transcript,
        "text_source": letter.text_source,
        "anonymous": letter.anonymous,
        "confidential": letter.confidential,
        "attachments": [
            {"filename": a.filename, "media_type": a.media_type, "size": a.size, "sha256": a.sha256}
            for a in letter.attachments
        ],
        "assignments": [assignment_view(a) for a in assignments],
        "events": [event_view(e) for e in letter.events],
    }


def assignment_view(assignment: Assignment) -> dict[str, Any]:
    """Which department holds a letter and how: the same keys in the CLI's and the API's
    JSON (docs/cli.md, docs/api.md)."""
    return {
        "department": assignment.department.code,
        "department_name": assignment.department.name,
        "lead": assignment.lead,
        "reply_type": assignment.reply_type,
        "due_at": assignment.due_at and iso_utc(assignment.due_at),
        "status": assignment.status,
    }


def event_view(event: Event) -> dict[str, Any]:
    return {
        "at": iso_utc(event.at),
        "actor": event.actor,
        "kind": event.kind,
        "detail": event.detail,
    }
