"""With the database down, nothing a channel handed over is lost, and nothing is stored twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from gateway.contract.errors import StoreUnavailable
from store.db import make_sessionmaker
from store.models import Letter, MissedCall
from tests.conftest import Parts, build_intake, make_contact
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def cut(cut_engine: Engine, database_url: str, tmp_path: Path) -> Parts:
    return build_intake(cut_engine, tmp_path)


def letters_in(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Letter)).scalar_one())


pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def test_a_contact_arriving_during_an_outage_is_spooled_then_stored_once(
    cut: Parts, proxy: TcpProxy, engine: Engine
) -> None:
    cut.intake.accept_sync(make_contact(1))  # a pooled connection exists, then breaks
    proxy.down()

    accepted = cut.intake.accept_sync(make_contact(2))

    assert accepted.spooled and accepted.tracking_number is None
    assert cut.spool.depth() == 1
    assert cut.intake.drain_spool() == 0  # still down: the file stays
    assert cut.spool.depth() == 1

    proxy.up()
    assert cut.intake.drain_spool() == 1
    assert cut.spool.depth() == 0
    assert letters_in(engine) == 2
    assert cut.intake.drain_spool() == 0
    again = cut.intake.accept_sync(make_contact(2))
    assert not again.created and again.tracking_number is not None
    assert letters_in(engine) == 2


def test_a_sender_that_can_retry_is_told_to_retry_and_nothing_is_spooled(
    cut: Parts, proxy: TcpProxy
) -> None:
    proxy.down()

    with pytest.raises(StoreUnavailable):
        cut.intake.store(make_contact())

    assert cut.spool.depth() == 0
    failures = cut.metrics.registry.get_sample_value(
        "hotline_intake_failures_total", {"channel": "sms", "reason": "database"}
    )
    assert failures == 1


def test_the_same_contact_spooled_twice_is_one_file_and_one_letter(
    cut: Parts, proxy: TcpProxy, engine: Engine
) -> None:
    proxy.down()
    cut.intake.accept_sync(make_contact())
    cut.intake.accept_sync(make_contact())
    assert cut.spool.depth() == 1

    proxy.up()
    cut.intake.drain_spool()
    assert letters_in(engine) == 1


def test_a_contact_redelivered_before_the_drain_is_still_one_letter(
    cut: Parts, proxy: TcpProxy, engine: Engine
) -> None:
    proxy.down()
    cut.intake.accept_sync(make_contact())
    proxy.up()
    stored = cut.intake.accept_sync(make_contact())
    assert stored.created

    cut.intake.drain_spool()

    assert letters_in(engine) == 1
    assert cut.spool.depth() == 0


def test_a_damaged_spool_file_is_set_aside_and_the_rest_are_drained(
    cut: Parts, proxy: TcpProxy, engine: Engine
) -> None:
    proxy.down()
    cut.intake.accept_sync(make_contact(1))
    path = cut.spool.put(make_contact(2))
    path.write_bytes(path.read_bytes()[:40])  # a torn write from another tool, a bad disk
    (cut.spool.root / "garbage.json").write_bytes(b"\x00\xff not json")

    proxy.up()
    assert cut.intake.drain_spool() == 1

    assert letters_in(engine) == 1
    assert sorted(p.name for p in cut.spool.rejected.iterdir()) == sorted(
        ["garbage.json", path.name]
    )
    assert cut.metrics.registry.get_sample_value("hotline_spool_rejected_total") == 2
    assert cut.spool.depth() == 0


def missed_calls_in(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    with make_sessionmaker(engine)() as session:
        return [
            (m.call_id, m.reason, m.citizen.phone if m.citizen else None, m.called)
            for m in session.scalars(select(MissedCall).order_by(MissedCall.call_id))
        ]


def test_a_missed_call_during_an_outage_is_spooled_then_listed_once(
    cut: Parts, proxy: TcpProxy, engine: Engine
) -> None:
    record = cut.intake.missed_calls("sip-1")
    cut.intake.accept_sync(make_contact(1))  # a pooled connection exists, then breaks
    proxy.down()

    record("call-a@pbx", "13812345678", "12345", "hung_up_in_menu")
    record("call-a@pbx", "13812345678", "12345", "hung_up_in_menu")  # a retried report

    assert cut.spool.depth() == 1  # one file per call
    assert cut.intake.drain_spool() == 0
    proxy.up()
    assert cut.intake.drain_spool() == 1
    assert cut.spool.depth() == 0
    assert missed_calls_in(engine) == [("call-a@pbx", "hung_up_in_menu", "13812345678", "12345")]
    record("call-a@pbx", "13812345678", "12345", "hung_up_in_menu")
    assert len(missed_calls_in(engine)) == 1


def test_a_call_that_left_a_letter_is_never_on_the_callback_list(
    cut: Parts, engine: Engine
) -> None:
    letter = make_contact(7)
    cut.intake.accept_sync(letter)

    cut.intake.missed_calls(letter.source)(letter.external_id, "13812345678", None, "hung_up")

    assert missed_calls_in(engine) == []
