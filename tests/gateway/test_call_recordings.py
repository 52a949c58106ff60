"""Call recordings are deleted after acd.keep_recordings_days; nothing else goes with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from gateway.contract.contact import Attachment as File
from gateway.engine.call_recordings import FILENAME, purge_recordings
from store.db import make_sessionmaker
from store.models import Attachment, Event, Letter
from tests.conftest import Parts, make_contact

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
RECORDING = b"RIFF" + b"\x01" * 400  # the bytes do not matter, only who names them


def a_call(parts: Parts, n: int, received: datetime, recording: bytes = RECORDING) -> None:
    """A stored letter and, as the worker adds it after the talk, its call's recording."""
    contact = make_contact(n, received_at=received, external_id=f"call-{n}")
    parts.intake.store(contact)
    assert parts.intake.attach("modem-1", f"call-{n}", File(FILENAME, "audio/wav", recording))


def files_of(engine: Engine) -> dict[str, list[str]]:
    with make_sessionmaker(engine)() as session:
        found: dict[str, list[str]] = {}
        for letter in session.scalars(select(Letter).order_by(Letter.id)):
            found[letter.external_id] = sorted(a.filename for a in letter.attachments)
        return found


def test_recordings_older_than_the_cutoff_go_with_an_event_and_their_files(
    engine: Engine, parts: Parts
) -> None:
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=10)
    a_call(parts, 1, old, b"RIFF old only")
    a_call(parts, 2, old)  # the same bytes as the recent one's: the file stays for it
    a_call(parts, 3, recent)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        shas = {a.letter.external_id: a.sha256 for a in session.scalars(select(Attachment))
                if a.filename == FILENAME}  # fmt: skip

    assert purge_recordings(sessions, parts.files, NOW - timedelta(days=180), NOW) == 2

    # The photo each letter came with is untouched; only the old calls' recordings went.
    assert files_of(engine) == {
        "call-1": ["照片.jpg"],
        "call-2": ["照片.jpg"],
        "call-3": [FILENAME, "照片.jpg"],
    }
    assert not parts.files.path_of(shas["call-1"]).exists()
    assert parts.files.path_of(shas["call-3"]).exists()  # call-2's bytes, still named
    with sessions() as session:
        events = session.execute(
            select(Letter.external_id, Event.actor)
            .join(Letter, Letter.id == Event.letter_id)
            .where(Event.kind == "recording_deleted")
            .order_by(Event.id)
        ).all()
        assert [tuple(e) for e in events] == [
            ("call-1", "retention"),
            ("call-2", "retention"),
        ]
    # Once is enough: nothing left to delete.
    assert purge_recordings(sessions, parts.files, NOW - timedelta(days=180), NOW) == 0


def test_a_recording_for_a_letter_never_stored_is_refused(parts: Parts, tmp_path: Path) -> None:
    file = File(FILENAME, "audio/wav", RECORDING)
    assert parts.intake.attach("modem-1", "no-such-call", file) is False
