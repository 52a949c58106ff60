"""A finished outbox row keeps no one's words or address in clear: a sent SMS or e-mail
keeps only its medium's references (its address sealed), a given-up one is sealed whole,
and a dead-lettered webhook replayed later goes out with the citizen it had. Both stores."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select, text

from gateway.core.messages import queue_message
from gateway.engine import webhooks
from gateway.engine.outbox import DeliveryHandler
from store.db import make_sessionmaker
from store.models import Letter, OutboxMessage
from tests.conftest import PII, Parts, make_contact

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
PHONE = "+8613800138000"
BODY = "【12345市民热线】您的诉求已受理，编号202611230000011，查询码4821。"
CITIZEN = {"name": "张三", "phone": PHONE, "email": None}


def raw(engine: Engine, outbox_id: int) -> str:
    """The row as a copy of the database shows it."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT destination, payload FROM outbox WHERE id = :id"), {"id": outbox_id}
        ).one()
    return f"{row.destination} {row.payload}"


def queued(engine: Engine, parts: Parts, kind: str, to: str, payload: dict[str, Any]) -> int:
    parts.intake.accept_sync(make_contact(1))
    with make_sessionmaker(engine).begin() as session:
        letter_id = session.scalars(select(Letter.id)).one()
        return queue_message(session, kind, letter_id, to, payload, NOW).id


def handler(engine: Engine, answer: Mapping[str, Any] | None = None) -> DeliveryHandler:
    def send(to: str, payload: Mapping[str, Any], message_id: str) -> Mapping[str, Any] | None:
        assert (to, payload["body"]) == (PHONE, BODY)  # sent as queued
        return answer

    return DeliveryHandler(make_sessionmaker(engine), {"sms": send}, lambda: NOW, "h")


def job(outbox_id: int) -> Any:
    return SimpleNamespace(payload={"outbox_id": outbox_id}, attempts=1)


def test_a_sent_sms_keeps_its_references_and_not_its_words_or_number(
    engine: Engine, parts: Parts
) -> None:
    outbox_id = queued(engine, parts, "sms", PHONE, {"body": BODY})
    assert PHONE in raw(engine, outbox_id)  # waiting: in clear, as docs/privacy.md says

    handler(engine, {"modem": "modem-1", "references": [7]}).run(job(outbox_id))

    with make_sessionmaker(engine)() as session:
        sent = session.get(OutboxMessage, outbox_id)
        assert sent is not None
        assert (sent.status, sent.sent_at, sent.kind) == ("sent", NOW, "sms")
        assert sent.payload == {"sent": {"modem": "modem-1", "references": [7]}}
        assert PII.decrypt(sent.destination, "outbox.destination") == PHONE
    stored = raw(engine, outbox_id)
    assert "13800138000" not in stored and "查询码" not in stored and "4821" not in stored


def test_a_given_up_sms_is_sealed_whole(engine: Engine, parts: Parts) -> None:
    outbox_id = queued(engine, parts, "sms", PHONE, {"body": BODY})

    handler(engine).gave_up(job(outbox_id), "provider said: unreachable")

    stored = raw(engine, outbox_id)
    assert "13800138000" not in stored and "4821" not in stored and "pii1:" in stored
    with make_sessionmaker(engine)() as session:
        failed = session.get(OutboxMessage, outbox_id)
        assert failed is not None and failed.status == "failed"
        assert set(failed.payload) == {"sealed"}


def test_a_replayed_webhook_goes_out_with_the_citizen_it_had(engine: Engine, parts: Parts) -> None:
    payload = {"type": "letter.created", "data": {"tracking_number": "1", "citizen": CITIZEN}}
    outbox_id = queued(engine, parts, webhooks.KIND, "cases", payload)
    sessions = make_sessionmaker(engine)
    hooks = webhooks.WebhookDelivery(sessions, lambda *a: None, lambda: NOW)

    hooks.gave_up(job(outbox_id), "cases answered 500")
    assert "张三" not in raw(engine, outbox_id) and "13800138000" not in raw(engine, outbox_id)
    assert webhooks.replay(sessions, "cases", None, NOW) == 1

    with sessions() as session:
        again = session.get(OutboxMessage, outbox_id)
        assert again is not None
        assert (again.status, again.destination, again.payload) == ("pending", "cases", payload)
