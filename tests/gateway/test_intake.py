"""Intake stores each contact as exactly one letter, with its citizen, files and history."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.engine import make_url

from gateway.contract import tracking
from gateway.contract.contact import Attachment as File
from gateway.contract.contact import IncomingContact
from gateway.contract.kinds import DELIVER_SMS, ROUTE
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.notifications import Receipts
from gateway.engine.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.models import Attachment, Citizen, Event, Job, Letter, OutboxMessage
from tests.conftest import PII, SHANGHAI, Parts, count_rows, make_contact


async def test_a_contact_becomes_a_letter_with_citizen_files_and_a_received_event(
    parts: Parts, engine: Engine
) -> None:
    contact = make_contact()
    accepted = await parts.intake.accept(contact)

    assert accepted.created and not accepted.spooled
    assert accepted.tracking_number is not None
    assert tracking.is_valid(accepted.tracking_number)
    # 06:30 UTC is 14:30 in Shanghai, the first letter of that local day.
    assert accepted.tracking_number.startswith("20261126000001")
    assert accepted.verification_code is not None and len(accepted.verification_code) == 6
    with engine.connect() as conn:
        letter = conn.execute(select(Letter.__table__)).one()
        citizen = conn.execute(select(Citizen.__table__)).one()
        attachment = conn.execute(select(Attachment.__table__)).one()
        event = conn.execute(select(Event.__table__)).one()
    assert letter.text == contact.text and letter.subject == "路灯不亮"
    assert letter.channel == "sms" and letter.status == "received"
    assert letter.citizen_id == citizen.id and citizen.phone == "+8613800138000"
    data = contact.attachments[0].data
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.size == len(data)
    assert parts.files.read(attachment.sha256) == data
    assert event.kind == "received" and event.letter_id == letter.id
    assert event.actor == "channel:modem-1"


async def test_the_same_contact_delivered_again_is_the_same_letter(
    parts: Parts, engine: Engine
) -> None:
    first = await parts.intake.accept(make_contact())
    again = await parts.intake.accept(make_contact())

    assert again.tracking_number == first.tracking_number
    assert not again.created
    assert count_rows(engine, Letter) == 1
    assert count_rows(engine, Attachment) == 1


async def test_a_nul_in_what_the_sender_wrote_is_stored_on_every_database(
    parts: Parts, engine: Engine
) -> None:
    """PostgreSQL refuses U+0000 in text (psycopg DataError: the modem thread died on it
    and re-read the SMS at every restart). Shown as U+FFFD, the original kept in raw."""
    contact = make_contact(
        external_id="8613800138000:26112614300032:\x00",
        subject="路灯\x00不亮",
        text="人民路\x00路灯坏了",
        attachments=(File("照\x00片.jpg", "image/jpeg", b"\xff\xd8\xff\x00"),),
    )
    first = await parts.intake.accept(contact)
    again = await parts.intake.accept(contact)

    assert first.created and not first.spooled and again.tracking_number == first.tracking_number
    with make_sessionmaker(engine)() as session:
        letter = session.scalars(select(Letter)).one()
        assert (letter.subject, letter.text) == ("路灯\ufffd不亮", "人民路\ufffd路灯坏了")
        assert letter.external_id.endswith(":\ufffd") and letter.raw == "人民路\x00路灯坏了"
        assert [a.filename for a in letter.attachments] == ["照\ufffd片.jpg"]


async def test_sequence_numbers_count_per_local_day(parts: Parts) -> None:
    late_evening = datetime(2026, 11, 26, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    next_morning = datetime(2026, 11, 26, 16, 1, tzinfo=UTC)  # 00:01 on the 27th
    a = await parts.intake.accept(make_contact(1, received_at=late_evening))
    b = await parts.intake.accept(make_contact(2, received_at=late_evening))
    c = await parts.intake.accept(make_contact(3, received_at=next_morning))

    assert [x.tracking_number[:14] for x in (a, b, c) if x.tracking_number] == [
        "20261126000001",
        "20261126000002",
        "20261127000001",
    ]


def test_fifty_concurrent_deliveries_of_one_contact_store_one_letter(
    parts: Parts, engine: Engine
) -> None:
    contact = make_contact()
    start = threading.Barrier(50)

    def deliver(_: int) -> str | None:
        start.wait()
        return parts.intake.accept_sync(contact).tracking_number

    with ThreadPoolExecutor(max_workers=50) as pool:
        numbers = set(pool.map(deliver, range(50)))

    assert len(numbers) == 1 and None not in numbers
    assert count_rows(engine, Letter) == 1
    assert count_rows(engine, Citizen) == 1
    assert count_rows(engine, Attachment) == 1
    assert count_rows(engine, Event) == 1


def test_concurrent_different_contacts_get_distinct_sequence_numbers(
    parts: Parts, engine: Engine
) -> None:
    start = threading.Barrier(20)

    def deliver(n: int) -> str | None:
        start.wait()
        return parts.intake.accept_sync(make_contact(n)).tracking_number

    with ThreadPoolExecutor(max_workers=20) as pool:
        numbers = list(pool.map(deliver, range(20)))

    assert len(set(numbers)) == 20
    assert sorted(int(n[8:14]) for n in numbers if n) == list(range(1, 21))


async def test_a_contact_without_attachments_or_citizen_details_is_stored(
    parts: Parts, engine: Engine
) -> None:
    bare: IncomingContact = replace(make_contact(), attachments=(), subject="", anonymous=True)
    accepted = await parts.intake.accept(bare)

    assert accepted.created
    assert count_rows(engine, Attachment) == 0


async def test_identical_files_in_two_letters_are_stored_once_on_disk(parts: Parts) -> None:
    await parts.intake.accept(make_contact(1))
    await parts.intake.accept(make_contact(257))  # same photo bytes (257 % 256 == 1)

    files = [p for p in parts.files.root.rglob("*") if p.is_file()]
    assert len(files) == 1


async def test_counters_show_letters_per_channel_and_redeliveries(parts: Parts) -> None:
    await parts.intake.accept(make_contact(1))
    await parts.intake.accept(make_contact(1))
    await parts.intake.accept(make_contact(2))

    registry = parts.metrics.registry
    assert registry.get_sample_value("hotline_letters_received_total", {"channel": "sms"}) == 2
    assert registry.get_sample_value("hotline_contacts_redelivered_total", {"channel": "sms"}) == 1


async def test_jobs_a_contact_needs_are_queued_with_its_letter(
    parts: Parts, engine: Engine
) -> None:
    await parts.intake.accept(make_contact(1, jobs=("ocr",)))
    await parts.intake.accept(make_contact(1, jobs=("ocr",)))  # redelivered: no second job

    with engine.connect() as conn:
        rows = conn.execute(select(Job.kind, Job.letter_id, Job.status)).all()
        letter_id = conn.execute(select(Letter.id)).scalar_one()
    assert rows == [("ocr", letter_id, "queued")]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_contact_another_node_stores_meanwhile_is_the_letter_that_node_stored(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Two nodes take one contact at once (a mail server trying the second MX, a partner's
    retry through the balancer). This node looks for it, finds nothing, and the other node
    commits it before this node's insert: the unique key refuses the second row and intake
    answers with the other node's letter, queuing nothing more."""
    contact = make_contact()
    names = {node: f"hotline-{node}-{uuid.uuid4().hex[:8]}" for node in ("here", "there")}

    def node(name: str) -> tuple[Engine, Intake, Metrics]:
        url = make_url(database_url).update_query_dict({"application_name": names[name]})
        node_engine = make_engine(url.render_as_string(hide_password=False), pii=PII)
        metrics = Metrics()
        intake = Intake(
            make_sessionmaker(node_engine),
            AttachmentStore(tmp_path / "attachments"),
            Spool(tmp_path / name / "spool", metrics),
            metrics,
            SHANGHAI,
            receipts=Receipts(email=False, sms=True),
            standing_jobs=(ROUTE,),
        )
        return node_engine, intake, metrics

    here_engine, here, here_metrics = node("here")
    there_engine, there, _ = node("there")
    inserted = threading.Event()

    def waiting_for_there() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE application_name = :name AND wait_event_type = 'Lock'"
                    ),
                    {"name": names["here"]},
                ).scalar_one()
            )

    @event.listens_for(there_engine, "commit")
    def commit_once_here_waits(_: object) -> None:
        # The other node's letter is written, not committed: this node, looking now, finds
        # nothing, and then waits on that node's row of the day's tracking numbers.
        if inserted.is_set():
            return
        inserted.set()
        deadline = time.monotonic() + 30
        while not waiting_for_there():
            assert time.monotonic() < deadline, "this node never reached the other's rows"
            time.sleep(0.01)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            theirs = pool.submit(there.accept_sync, contact)
            assert inserted.wait(30)
            mine = pool.submit(here.accept_sync, contact)
            first, again = theirs.result(timeout=60), mine.result(timeout=60)
    finally:
        here_engine.dispose()
        there_engine.dispose()

    assert first.created and not again.created and not again.spooled
    assert again.tracking_number == first.tracking_number
    for model in (Letter, Citizen, Attachment, Event, OutboxMessage):
        assert count_rows(engine, model) == 1, model.__name__
    with engine.connect() as conn:
        assert sorted(conn.execute(select(Job.kind)).scalars()) == sorted([DELIVER_SMS, ROUTE])
    registry = here_metrics.registry
    assert registry.get_sample_value("hotline_contacts_redelivered_total", {"channel": "sms"}) == 1
    assert registry.get_sample_value("hotline_letters_received_total", {"channel": "sms"}) is None
