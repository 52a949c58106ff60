"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select, text

from store.migrate import alembic_config
from store.models import Base, Letter, OutboxMessage
from tests.conftest import PII


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


OUTBOX = (
    "INSERT INTO outbox (id, kind, destination, payload, status, attempts, next_attempt_at, "
    "created_at) VALUES (:id, :kind, :to, :payload, :status, 1, '2026-11-26 06:30:00+00:00', "
    "'2026-11-26 06:30:00+00:00')"
)


def test_outbox_messages_finished_before_0013_lose_their_words_and_seal_their_address(
    engine: Engine,
) -> None:
    citizen = {"name": "张三", "phone": "+8613800138000", "email": None}
    rows = [  # id, kind, destination, payload, status
        (1, "sms", "+8613800138000", {"body": "查询码4821", "sent": {"references": [7]}}, "sent"),
        (2, "webhook", "cases", {"data": {"status": "assigned", "citizen": citizen}}, "failed"),
        (3, "sms", "+8613800138000", {"body": "查询码4821"}, "pending"),
    ]
    config = alembic_config(engine)
    command.downgrade(config, "0012")
    try:
        with engine.begin() as conn:
            for id_, kind, to, payload, status in rows:
                values = {"id": id_, "kind": kind, "to": to, "status": status}
                conn.execute(text(OUTBOX), {**values, "payload": json.dumps(payload)})
    finally:
        command.upgrade(config, "head")

    with engine.connect() as conn:
        found = {
            r.id: r
            for r in conn.execute(
                select(OutboxMessage.id, OutboxMessage.destination, OutboxMessage.payload)
            )
        }
    assert found[1].payload == {"sent": {"references": [7]}}
    assert PII.decrypt(found[1].destination, "outbox.destination") == "+8613800138000"
    assert found[2].destination == "cases" and set(found[2].payload) == {"data", "sealed"}
    assert found[2].payload["data"] == {"status": "assigned"}
    assert (found[3].destination, found[3].payload) == ("+8613800138000", rows[2][3])
