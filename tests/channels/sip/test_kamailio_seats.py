"""Seats register at Kamailio: real Kamailio 5.6 reading the real `seats` table (SQLite and
PostgreSQL), SIPp desk phones with digest auth, SIPp standing in for a worker."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from channels.sip.kamailio import Kamailio, render
from channels.sip.kamailio_db import kamailio_db
from channels.sip.registrations import RegistrarUnavailable, registered_seats
from gateway.contract.config import SeatsConfig
from gateway.contract.errors import ConfigurationError
from gateway.core import seats
from gateway.frontends.console import accounts
from store.db import make_sessionmaker
from tests.channels.sip.test_kamailio import WAIT, Worker, settings, start_worker
from tests.conftest import require_tool
from tests.support.processes import free_port
from tests.support.sipp import SCENARIOS, SippResult, SippUas, run_sipp

REALM = "12345.example.gov.cn"
NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
SEATS = SeatsConfig(realm=REALM, password_length=16)


@pytest.fixture
def passwords(engine: Engine) -> dict[str, str]:
    """Seats 1001 (zhang) and 1002 (li) in the database, each with its one-time password."""
    made = {}
    with make_sessionmaker(engine).begin() as session:
        for name, seat in (("zhang", "1001"), ("li", "1002")):
            accounts.add_user(session, name, name.title(), "operator", "Pw-long-enough-1", NOW)
            made[seat] = seats.add(session, seat, name, SEATS, now=NOW, actor="admin").password
    return made


class Front:
    """Kamailio with the seats' registrar over the test's database, and where its one
    stand-in worker sends from (the dispatcher's address: a trusted source)."""

    def __init__(self, tmp_path: Path, database_url: str, worker_port: int = 0) -> None:
        require_tool("kamailio")
        self.worker_port = worker_port or free_port()
        self.sip = settings(tmp_path)
        self.kamailio = Kamailio(
            self.sip, [("127.0.0.1", self.worker_port)], seats=SEATS, database_url=database_url
        )
        self.run_dir = self.sip.kamailio.run_dir
        self.kamailio.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sip.port}"

    def registered(self) -> set[str]:
        return registered_seats(self.run_dir, timeout=WAIT)


@pytest.fixture
def fronts(database_url: str, passwords: dict[str, str]) -> Iterator[list[Front]]:
    """The Kamailios a test starts over its database; each stopped and found gone."""
    started: list[Front] = []
    yield started
    for front in started:
        front.kamailio.stop()
        assert not front.kamailio.alive()


@pytest.fixture
def front(fronts: list[Front], tmp_path: Path, database_url: str) -> Front:
    fronts.append(Front(tmp_path, database_url))
    return fronts[0]


@pytest.fixture
def sipp_workers() -> Iterator[list[Worker]]:
    """Stand-in workers taking calls (test_kamailio's SIPp UAS); killed at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def register(
    front: Front,
    seat: str,
    user: str,
    password: str,
    *,
    port: int = 0,
    expires: int = 3600,
    refused: bool = False,
) -> SippResult:
    """A desk phone's REGISTER for ``seat`` authenticated as ``user``; 200 expected, or 403."""
    scenario = "seat_register_refused.xml" if refused else "seat_register.xml"
    return run_sipp(
        SCENARIOS / scenario,
        front.target,
        local_ip="127.0.0.1",
        local_port=port,
        service=seat,
        keys={"expires": str(expires)},
        timeout=WAIT,
        extra_args=["-au", user, "-ap", password],
    )


def test_seats_with_their_passwords_register_and_are_listed_until_they_unregister(
    front: Front, passwords: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    assert front.registered() == set()
    phones = {"1001": free_port(), "1002": free_port()}

    registered = register(front, "1001", "1001", passwords["1001"], port=phones["1001"])
    assert register(front, "1002", "1002", passwords["1002"], port=phones["1002"]).ok

    assert registered.ok, registered
    assert registered.messages.count("SIP/2.0 401 Unauthorized") == 1
    assert f'realm="{REALM}"' in registered.messages
    assert 'qop="auth"' in registered.messages
    assert registered.messages.count("SIP/2.0 200 OK") == 1
    assert front.registered() == {"1001", "1002"}

    gone = register(front, "1001", "1001", passwords["1001"], port=phones["1001"], expires=0)

    assert gone.ok, gone
    assert front.registered() == {"1002"}
    assert "ERROR" not in front.kamailio.output
    # Neither a password nor its HA1 is in Kamailio's output or in our log.
    said = front.kamailio.output + caplog.text
    for seat, password in passwords.items():
        assert password not in said
        assert seats.ha1(seat, REALM, password) not in said
    # Kamailio gone, the queue is told so rather than given an empty set.
    front.kamailio.stop()
    with pytest.raises(RegistrarUnavailable, match="RPC FIFO"):
        front.registered()


def test_a_captured_register_sent_again_is_challenged_not_registered(
    front: Front, passwords: dict[str, str]
) -> None:
    phone = free_port()
    registered = register(front, "1001", "1001", passwords["1001"], port=phone)
    assert registered.ok, registered
    gone = register(front, "1001", "1001", passwords["1001"], port=phone, expires=0)
    assert gone.ok, gone
    # The phone's authenticated REGISTER, as SIPp logged it, replayed from its address.
    [sent] = [
        block.split("\n\n", 1)[1].strip()
        for block in registered.messages.split("\n" + "-" * 47)
        if "UDP message sent" in block and "Authorization: Digest" in block
    ]
    replay = "\r\n".join(sent.splitlines()) + "\r\n\r\n"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind(("127.0.0.1", phone))
        attacker.settimeout(WAIT)
        attacker.sendto(replay.encode(), ("127.0.0.1", front.sip.port))
        answer = attacker.recv(65535).decode()

    assert answer.startswith("SIP/2.0 401 Unauthorized\r\n"), answer
    assert front.registered() == set()


# The password the phone gives: OWN is the authenticating seat's real one.
OWN = ""


@pytest.mark.parametrize(
    ("seat", "user", "password"),
    [
        ("1001", "1001", "Wrong0password00"),
        ("1009", "1009", "Any0password0000"),
        # li's seat and li's own password, registering zhang's seat.
        ("1001", "1002", OWN),
    ],
    ids=["wrong-password", "unknown-seat", "another-seats-name"],
)
def test_a_phone_without_the_seats_password_gets_403_and_is_not_registered(
    front: Front, passwords: dict[str, str], seat: str, user: str, password: str
) -> None:
    refused = register(front, seat, user, password or passwords[user], refused=True)

    assert refused.ok, refused
    assert refused.messages.count("SIP/2.0 403 Forbidden") == 1
    assert front.registered() == set()
    assert "seat registration refused" in front.kamailio.wait_for_output(
        "seat registration refused", WAIT
    )


def test_a_worker_reaches_a_registered_seat_and_the_seats_bye_comes_back(
    front: Front, passwords: dict[str, str], tmp_path: Path
) -> None:
    phone = free_port()
    assert register(front, "1002", "1002", passwords["1002"], port=phone).ok
    with SippUas(SCENARIOS / "seat_uas.xml", phone, calls=1, extra_args=["-d", "300"]) as desk:
        call = run_sipp(
            SCENARIOS / "seat_worker_call.xml",
            front.target,
            local_ip="127.0.0.1",
            local_port=front.worker_port,
            service="1002",
            timeout=WAIT,
        )
        answered = desk.stop()

    assert call.ok, call
    assert answered.ok, answered
    # The seat's phone got the worker's call at its registered contact, via Kamailio.
    assert f"INVITE sip:1002@127.0.0.1:{phone};transport=UDP SIP/2.0" in answered.messages
    assert call.call_ids[0] in answered.messages
    # Marked as a seat's call, so its BYE frees no worker's slot.
    record_route = rf"Record-Route: <sip:127\.0\.0\.1:{front.sip.port};lr;ftag=[^;>]+;seat=1>"
    assert re.search(record_route, answered.messages)
    assert "ERROR" not in front.kamailio.output


def test_a_worker_giving_up_while_the_seat_rings_cancels_the_ringing(
    front: Front, passwords: dict[str, str]
) -> None:
    phone = free_port()
    assert register(front, "1001", "1001", passwords["1001"], port=phone).ok
    with SippUas(SCENARIOS / "kamailio_uas_rings.xml", phone, calls=1) as desk:
        call = run_sipp(
            SCENARIOS / "kamailio_uac_cancels.xml",
            front.target,
            local_ip="127.0.0.1",
            local_port=front.worker_port,
            service="1001",
            timeout=WAIT,
        )
        rang = desk.stop()

    assert call.ok, call
    assert rang.ok, rang
    assert f"CANCEL sip:1001@127.0.0.1:{phone};transport=UDP SIP/2.0" in rang.messages
    assert "SIP/2.0 487 Request Terminated" in call.messages


@pytest.mark.parametrize(
    ("seat", "reply"),
    [("1001", "480 Temporarily Unavailable"), ("4711", "404 Not Found")],
    ids=["seat-not-registered", "no-such-seat"],
)
def test_a_worker_calling_a_seat_without_a_phone_gets_its_refusal(
    front: Front, seat: str, reply: str
) -> None:
    call = run_sipp(
        SCENARIOS / "seat_worker_call_refused.xml",
        front.target,
        local_ip="127.0.0.1",
        local_port=front.worker_port,
        service=seat,
        timeout=WAIT,
    )

    assert call.ok, call
    assert f"SIP/2.0 {reply}" in call.messages


def test_a_caller_from_outside_dialling_a_seat_reaches_the_ivr_not_the_phone(
    fronts: list[Front],
    database_url: str,
    passwords: dict[str, str],
    sipp_workers: list[Worker],
    tmp_path: Path,
) -> None:
    # A worker taking calls behind Kamailio, and the seat's phone registered too.
    worker = start_worker(sipp_workers, require_tool("sipp"), tmp_path, "kamailio_uas.xml")
    front = Front(tmp_path, database_url, worker.port)
    fronts.append(front)
    phone = free_port()
    assert register(front, "1001", "1001", passwords["1001"], port=phone).ok
    front.kamailio.wait_for_output(f"worker up: sip:127.0.0.1:{front.worker_port}", WAIT)

    with SippUas(SCENARIOS / "seat_uas.xml", phone, calls=1) as desk:
        call = run_sipp(
            SCENARIOS / "kamailio_uac.xml", front.target, local_ip="127.0.0.1", service="1001"
        )
        untouched = desk.stop()

    assert call.ok, call
    worker.wait_for("ANSWERED", 1)
    assert "INVITE" not in untouched.messages


def test_without_kamailio_the_registrations_cannot_be_asked(tmp_path: Path) -> None:
    with pytest.raises(RegistrarUnavailable, match="RPC FIFO"):
        registered_seats(tmp_path, timeout=1)


# Rendering: what Kamailio is given for each database URL, and the URLs it cannot use.


def test_a_sqlite_database_is_read_by_db_sqlite_at_its_absolute_path(tmp_path: Path) -> None:
    config, _ = render(
        settings(tmp_path), [("127.0.0.1", 5071)], SEATS, f"sqlite:///{tmp_path}/hotline.db"
    )

    assert 'loadmodule "db_sqlite.so"' in config
    assert f'#!define SEATS_DB "sqlite://{tmp_path}/hotline.db"' in config
    assert f'#!define SEATS_REALM "{REALM}"' in config
    assert '#!define SEAT_PHONES "127.0.0.0/8,::1/128"' in config
    assert 'modparam("auth_db", "password_column", "ha1")' in config


def test_a_postgresql_password_and_options_go_to_the_environment_not_the_config(
    tmp_path: Path,
) -> None:
    url = "postgresql+psycopg://hotline:s3cret@db.example:5433/hotline?options=-csearch_path%3Dx"
    config, _ = render(settings(tmp_path), [("127.0.0.1", 5071)], SEATS, url)

    assert 'loadmodule "db_postgres.so"' in config
    assert '#!define SEATS_DB "postgres://hotline@db.example:5433/hotline"' in config
    assert "s3cret" not in config
    assert kamailio_db(url).env == {"PGPASSWORD": "s3cret", "PGOPTIONS": "-csearch_path=x"}


def test_without_seats_or_with_the_registrar_off_register_is_refused_as_before(
    tmp_path: Path,
) -> None:
    sip, workers = settings(tmp_path), [("127.0.0.1", 5071)]
    before, _ = render(sip, workers)
    off = SeatsConfig(registrar=False)

    assert render(sip, workers, off, "sqlite:///:memory:")[0] == before
    assert "REGISTRAR" not in before
    assert "auth_db" not in before


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite://", "absolute path"),
        ("sqlite:///:memory:", "absolute path"),
        ("sqlite:///var/hotline.db", "absolute path"),
        ('sqlite:////tmp/a"b.db', "no quotes"),
        ("mysql://hotline@db/hotline", "not mysql"),
        ("postgresql:///hotline", "give a host"),
        ("postgresql://h@db/hotline?host=/run/postgresql", "cannot take host"),
        ("not a url", "not a database URL"),
    ],
)
def test_a_database_url_kamailio_cannot_use_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        kamailio_db(url)


def test_a_bad_phone_network_is_refused_naming_the_key(tmp_path: Path) -> None:
    bad = SeatsConfig(phone_sources=["10.0.0.0/33"])

    with pytest.raises(ConfigurationError, match=r"seats\.phone_sources"):
        render(settings(tmp_path), [("127.0.0.1", 5071)], bad, f"sqlite:///{tmp_path}/h.db")
