"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select, text

from store.migrate import alembic_config
from store.models import Base, Letter


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


LETTER = (
    "INSERT INTO letters (id, tracking_number, verification_code, channel, source, "
    "external_id, received_at, status, subject, text, anonymous, confidential) VALUES "
    "(:id, :number, 'code', :channel, 'src', :number, '2026-11-26 06:30:00+00:00', :status, "
    ":subject, :text, false, false)"
)
# (channel, status, subject, text, a job still to run) -> (text_source, text_pending)
STORED = [
    ("phone", "received", "电话留言", "", "transcribe", ("transcription", True)),
    ("phone", "triage", "电话留言", "", None, ("transcription", False)),
    ("phone", "received", "电话留言", "", "twilio_media", ("transcription", True)),
    ("phone", "triage", "人工坐席来电", "（来电已由人工坐席接听）", None, (None, False)),
    ("phone", "triage", "来电", "坐席记录：路灯坏了", None, (None, False)),
    ("fax", "received", "Fax from 0831", "You have received a fax.", "ocr", ("ocr", True)),
    ("fax", "assigned", "Fax from 0831", "You have received a fax.", None, ("ocr", False)),
    ("sms", "received", "", "路灯坏了", None, (None, False)),
]


def test_letters_stored_before_text_source_are_marked_from_what_they_are(
    engine: Engine,
) -> None:
    """A voicemail or fax still waiting for its job waits for it after the upgrade."""
    config = alembic_config(engine)
    command.downgrade(config, "0011")
    try:
        with engine.begin() as conn:
            for n, (channel, status, subject, text_, job, _) in enumerate(STORED, 1):
                values = {"id": n, "number": f"L{n}", "channel": channel, "status": status}
                conn.execute(text(LETTER), {**values, "subject": subject, "text": text_})
                if job:
                    conn.execute(
                        text(
                            "INSERT INTO jobs (kind, letter_id, payload, status, attempts, "
                            "run_after, created_at) VALUES (:kind, :id, '{}', 'queued', 0, "
                            "'2026-11-26 06:30:00+00:00', '2026-11-26 06:30:00+00:00')"
                        ),
                        {"kind": job, "id": n},
                    )
    finally:
        command.upgrade(config, "head")

    with engine.connect() as conn:
        marked = conn.execute(
            select(Letter.text_source, Letter.text_pending).order_by(Letter.id)
        ).all()
    assert [tuple(row) for row in marked] == [expected for *_, expected in STORED]
