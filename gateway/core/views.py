"""Letters as plain data: the stable JSON shape of `hotline letters ... --json` (docs/cli.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from store.models import Citizen, Event, Letter


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


def letter_detail(letter: Letter) -> dict[str, Any]:
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
        "events": [event_view(e) for e in letter.events],
    }


def event_view(event: Event) -> dict[str, Any]:
    return {
        "at": iso_utc(event.at),
        "actor": event.actor,
        "kind": event.kind,
        "detail": event.detail,
    }


def citizen_view(citizen: Citizen) -> dict[str, Any]:
    return {
        "name": citizen.name,
        "phone": citizen.phone,
        "email": citizen.email,
        "id_number": citizen.id_number,
        "address": citizen.address,
        "ip": citizen.ip,
    }
