"""Callers who ask for a person wait in the seats' call queue: `hotline serve` with two pjsua2
workers behind Kamailio, SIPp callers pressing 9, SIPp desk phones registered as seats with
their digest passwords, over the real database."""

from __future__ import annotations

import itertools
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gateway.contract.config import SeatsConfig, load_config
from gateway.core import seats
from gateway.frontends.console import accounts
from store.db import make_engine, make_sessionmaker
from store.models import Letter, MissedCall, QueuedCall
from tests.channels.sip.test_serve import serve_config, wait_until, worker_pids
from tests.channels.sip.test_sipp import FAST
from tests.conftest import PII, require_tool
from tests.support.processes import Child, free_port, gateway
from tests.support.sipp import SCENARIOS, SippUas, run_sipp, scenario

REALM = "hotline"
NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


# The callers press 9 a second after the answer, not FAST's 0.3 s: on a machine starved by
# other tests a worker's media can be up later than that, and an RFC 4733 key sent before
# it is lost (the caller would stay in the menu and never join the queue).
QUEUE_KEYS = {**FAST, "menu_wait": "1000"}


def queue_config(
    root: Path,
    *,
    max_wait: float = 60,
    record: bool = False,
    announce_every: float = 600,
    lines: str = "{}",
) -> Path:
    port, base = free_port(), free_port()
    sip = (
        f"    port: {port}\n    workers: 2\n    worker_base_port: {base}\n"
        "    transports: [udp]\n    kamailio: {ping_interval_seconds: 1}\n"
    )
    config = serve_config(root, sip)
    text = config.read_text(encoding="utf-8").replace(
        "ivr:\n",
        "ivr:\n  agent: {queue: true, working_hours: {start: '00:00', end: '00:00'},"
        f" lines: {lines}}}\n",
    )
    text += (
        f"acd: {{ring_timeout_seconds: 4, max_wait_seconds: {max_wait},"
        f" announce_every_seconds: {announce_every}, owner_timeout_seconds: 5,"
        f" record_calls: {str(record).lower()}}}\n"
        f"seats: {{realm: {REALM}}}\n"
    )
    config.write_text(text, encoding="utf-8")
    return config


@contextmanager
def queue_gateway(
    root: Path, made: list[Engine], **options: Any
) -> Iterator[tuple[Child, Path, Engine]]:
    """`hotline serve` with the queue (queue_config's options), once both workers are up;
    with its config and an engine on its database."""
    require_tool("sipp")
    require_tool("kamailio")
    config = queue_config(root, **options)
    with gateway(config) as serve:
        serve.wait_for_line("sip.front")
        wait_until(lambda: sum("worker up" in line for line in serve.lines) >= 2)
        yield serve, config, open_store(config, made)


def open_store(config: Path, made: list[Engine]) -> Engine:
    engine = make_engine(load_config(config).database.url, pii=PII)
    made.append(engine)
    return engine


def add_seats(engine: Engine, *names: str) -> dict[str, str]:
    """Operators with a seat each, signed in; their phones' passwords by seat."""
    passwords = {}
    with make_sessionmaker(engine).begin() as session:
        for number, name in enumerate(names, start=1001):
            seat = str(number)
            accounts.add_user(session, name, name.title(), "operator", "Pw-long-enough-1", NOW)
            settings = SeatsConfig(realm=REALM)
            passwords[seat] = seats.add(session, seat, name, settings, now=NOW, actor="t").password
            seats.set_state(session, seat, "available", now=NOW, actor="t")
    return passwords


def register(target: str, seat: str, password: str, phone_port: int) -> None:
    registered = run_sipp(
        SCENARIOS / "seat_register.xml",
        target,
        local_ip="127.0.0.1",
        local_port=phone_port,
        service=seat,
        keys={"expires": "3600"},
        timeout=15,
        extra_args=["-au", seat, "-ap", password],
    )
    assert registered.ok, registered


def sip_target(config: Path) -> str:
    return f"127.0.0.1:{load_config(config).channels.sip.port}"


def letters_of(engine: Engine) -> list[Letter]:
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(Letter)))
        for row in rows:
            _ = row.attachments, row.citizen
        return rows


def missed_calls(engine: Engine) -> list[MissedCall]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(MissedCall)))


def history(engine: Engine) -> list[QueuedCall]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(QueuedCall).order_by(QueuedCall.id)))


def test_a_caller_pressing_9_is_put_through_to_the_registered_seat_and_the_letter_is_linked(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    with queue_gateway(tmp_path, engine_of) as (_serve, config, engine):
        passwords = add_seats(engine, "zhang")
        phone = free_port()
        register(sip_target(config), "1001", passwords["1001"], phone)
        # The operator talks 2 s, then hangs up; the worker then ends the caller's call.
        with SippUas(SCENARIOS / "seat_uas.xml", phone, calls=1, extra_args=["-d", "2000"]) as desk:
            caller = run_sipp(
                scenario("call_agent"), sip_target(config), keys=QUEUE_KEYS, timeout=40
            )
            answered = desk.stop()
        assert caller.ok, caller
        assert answered.ok, answered
        assert "INVITE sip:1001@127.0.0.1" in answered.messages
        wait_until(lambda: any(row.outcome == "answered" for row in history(engine)))
        with make_sessionmaker(engine)() as session:
            [letter] = session.scalars(select(Letter))
            assert letter.channel == "phone"
            assert letter.citizen is not None and letter.citizen.phone == "13800138000"
            assert letter.external_id.startswith(caller.call_ids[0])
            assert session.scalars(select(MissedCall)).all() == []
        [row] = history(engine)
        assert row.call_id == letter.external_id
        assert row.seat == "1001"
        assert row.waited_seconds is not None and 0 <= row.waited_seconds < 4
        assert row.talk_seconds is not None and 1.5 <= row.talk_seconds < 6


def test_a_caller_hanging_up_while_no_seat_is_free_is_an_abandoned_call_to_return(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    with queue_gateway(tmp_path, engine_of) as (_serve, config, engine):
        add_seats(engine, "zhang")  # signed in, but its phone never registered
        caller = run_sipp(
            scenario("call_hangup_in_recording", tmp_path, digit="9"),
            sip_target(config),
            keys={**QUEUE_KEYS, "record_wait": "3000", "speak_ms": "1000"},
            timeout=40,
        )
        assert caller.ok, caller
        wait_until(lambda: any(row.outcome == "abandoned" for row in history(engine)))
        wait_until(lambda: bool(missed_calls(engine)))  # written once the queue was told
        with make_sessionmaker(engine)() as session:
            [missed] = session.scalars(select(MissedCall))
            assert missed.reason == "abandoned"
            assert session.scalars(select(Letter)).all() == []
        [row] = history(engine)
        assert row.seat is None and row.outcome == "abandoned"


def test_past_the_maximum_wait_the_caller_leaves_a_message(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    with queue_gateway(tmp_path, engine_of, max_wait=2) as (_serve, config, engine):
        # 9, then 1 after the maximum wait (the choice), then the message and #.
        caller = run_sipp(
            scenario("call_invalid_digit", tmp_path, invalid="9", digit="1"),
            sip_target(config),
            keys={**QUEUE_KEYS, "retry_wait": "4000", "record_wait": "1500"},
            timeout=60,
        )
        assert caller.ok, caller
        wait_until(lambda: any(row.outcome == "message" for row in history(engine)))
        wait_until(lambda: bool(letters_of(engine)))
        with make_sessionmaker(engine)() as session:
            [letter] = session.scalars(select(Letter))
            assert letter.category == "other"
            assert len(letter.attachments) == 1
            assert session.scalars(select(MissedCall)).all() == []


@pytest.mark.alone  # its seats' phones answer and talk to the second: starved, they slip
def test_callers_are_answered_in_the_order_they_joined_and_a_seat_not_answering_is_skipped(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    """Four callers a second apart; seat 1001's phone answers each call after 0.5 s and its
    operator talks 1.5 s, seat 1002's phone only rings. Each caller is answered in turn by
    1001, never two at once; 1002 rang once, for the ring timeout, and was then skipped."""
    with queue_gateway(tmp_path, engine_of) as (serve, config, engine):
        passwords = add_seats(engine, "zhang", "li")
        answering, ringing = free_port(), free_port()
        register(sip_target(config), "1001", passwords["1001"], answering)
        register(sip_target(config), "1002", passwords["1002"], ringing)
        talks = SippUas(SCENARIOS / "seat_uas.xml", answering, calls=4, extra_args=["-d", "1500"])
        rings = SippUas(
            SCENARIOS / "call_agent_uas.xml", ringing, keys={"agent_reply": "none"}, calls=1
        )
        with talks, rings:
            callers = run_sipp(
                scenario("call_agent"),
                sip_target(config),
                calls=4,
                rate=1,
                concurrency=4,
                keys=QUEUE_KEYS,
                timeout=60,
            )
            talked, rang = talks.stop(), rings.stop()
        assert callers.ok and callers.successful == 4, callers
        assert talked.messages.count("INVITE sip:1001@") == 4, talked
        assert rang.messages.count("INVITE sip:1002@") == 1, rang
        wait_until(lambda: sum(row.outcome == "answered" for row in history(engine)) == 4)
        # SIPp's Call-IDs are "<call number>-<pid>@<address>"; the log masks the rest.
        offers = [
            (found[1], found[2])
            for line in serve.lines
            if (found := re.search(r"sip.queue.offered call=(\d+)\D\S* seat=(\d+)", line))
        ]
    # Offered in the order they joined (SIPp placed them a second apart); 1002 once.
    first_offers = list(dict.fromkeys(call for call, _ in offers))
    assert first_offers == [call.split("-")[0] for call in callers.call_ids], offers
    assert [seat for _, seat in offers].count("1002") == 1, offers
    rows = history(engine)
    assert [row.seat for row in rows] == ["1001"] * 4
    # Answered in that order too, but for the caller who rang at 1002 meanwhile: a free
    # seat takes the first caller not already ringing elsewhere (docs/acd.md).
    [(rung, _)] = [offer for offer in offers if offer[1] == "1002"]
    skipped = f"{rung}-"
    joined = [row.call_id for row in sorted(rows, key=lambda row: row.joined_at)]
    answered = sorted(rows, key=lambda row: row.answered_at or NOW)
    keyed = [row.call_id for row in answered]
    assert [c for c in keyed if not c.startswith(skipped)] == [
        c for c in joined if not c.startswith(skipped)
    ]
    for before, after in itertools.pairwise(answered):
        assert before.ended_at is not None and after.answered_at is not None
        assert before.ended_at <= after.answered_at  # one call at a time on a seat
    with make_sessionmaker(engine)() as session:
        assert len(session.scalars(select(Letter)).all()) == 4
        assert session.scalars(select(MissedCall)).all() == []


def test_a_worker_killed_with_callers_waiting_loses_its_callers_and_the_queue_goes_on(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    """Four callers wait, no phone registered yet, spread over the two workers; one worker
    is killed (-9). Its callers are given up as lost (the restarted worker gives them up
    at once) and put on the callback list; the other worker's callers keep their place
    and are answered, in order, once a seat's phone registers."""
    with queue_gateway(tmp_path, engine_of) as (serve, config, engine):
        passwords = add_seats(engine, "zhang")
        with ThreadPoolExecutor(1) as pool:
            calling = pool.submit(
                run_sipp,
                scenario("call_agent"),
                sip_target(config),
                calls=4,
                rate=4,
                concurrency=4,
                keys=QUEUE_KEYS,
                timeout=30,
            )
            wait_until(lambda: len(history(engine)) == 4)
            owners = {line.split("index=")[1][0] for line in serve.lines if "sip.call " in line}
            assert owners == {"0", "1"}  # Kamailio spread them
            os.kill(worker_pids(serve)[1], signal.SIGKILL)
            wait_until(lambda: any(row.outcome == "lost" for row in history(engine)))
            lost = {row.call_id for row in history(engine) if row.outcome == "lost"}
            phone = free_port()
            register(sip_target(config), "1001", passwords["1001"], phone)
            desk = SippUas(SCENARIOS / "seat_uas.xml", phone, calls=4, extra_args=["-d", "500"])
            with desk:
                wait_until(lambda: all(row.outcome for row in history(engine)), timeout=40)
                desk.stop()
            calling.result()
    rows = history(engine)
    answered = [row for row in rows if row.outcome == "answered"]
    assert {row.call_id for row in rows} - lost == {row.call_id for row in answered}
    assert lost and answered
    # The restarted worker found who its predecessor's callers were: a callback each.
    with make_sessionmaker(engine)() as session:
        missed = session.scalars(select(MissedCall)).all()
        assert sorted(row.reason for row in missed) == ["lost"] * len(lost)
        assert {row.call_id for row in missed} == lost
    assert sorted(answered, key=lambda row: row.answered_at or NOW) == sorted(
        answered, key=lambda row: row.joined_at
    )
