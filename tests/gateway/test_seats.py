"""Operators' seats (坐席): `hotline seats ...` keeps each SIP password as its digest HA1 only,
shows it once, refuses a bad change in one line with docs/cli.md's exit code, and audits
every change (gateway/core/seats.py)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from gateway.cli import main
from gateway.cli_common import EXIT_NOT_FOUND, EXIT_USAGE
from gateway.contract.config import SeatsConfig
from gateway.core import seats
from gateway.frontends.console import accounts
from store.db import make_sessionmaker
from store.models import Base, ConsoleUser, Event, Seat
from tests.conftest import SHANGHAI

REALM = "12345.example.gov.cn"
NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
SETTINGS = SeatsConfig(realm=REALM, password_length=20)
# `hotline seats ARGS...`: (exit code, stdout, stderr)
Run = Callable[..., tuple[int, str, str]]
# The example under docs/cli.md's `hotline seats list --json`.
DOCUMENTED = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text("utf-8")
LIST_EXAMPLE = DOCUMENTED.split("## `hotline seats list --json`")[1].split("```json\n")[1]
LIST_KEYS = set(json.loads(LIST_EXAMPLE.split("```")[0])[0])


@pytest.fixture
def hotline(
    database_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Run]:
    """`hotline seats ...` in this process, logging at DEBUG with every SQL statement and its
    parameters, against a database holding operators zhang and li and supervisor wang."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: {json.dumps(database_url)}\n"
        f"logging:\n  level: DEBUG\nseats:\n  realm: {REALM}\n  password_length: 20\n",
        encoding="utf-8",
    )
    with make_sessionmaker(engine).begin() as session:
        for username, role in (("zhang", "operator"), ("li", "operator"), ("wang", "supervisor")):
            accounts.add_user(session, username, username.title(), role, "Pw-long-enough-1", NOW)
    statements = logging.getLogger("sqlalchemy.engine")
    level = statements.level
    statements.setLevel(logging.INFO)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), "seats", *args])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    statements.setLevel(level)


def everything_stored(engine: Engine) -> str:
    """Every row of every table, as text: what a copy of the database would give away."""
    with engine.connect() as connection:
        return "\n".join(
            repr(row)
            for table in Base.metadata.sorted_tables
            for row in connection.execute(table.select())
        )


def seat_of(engine: Engine, username: str) -> Seat | None:
    with make_sessionmaker(engine)() as session:
        return session.scalar(select(Seat).where(Seat.username == username))


def events(engine: Engine) -> list[tuple[str, str, dict[str, object]]]:
    with engine.connect() as connection:
        rows = connection.execute(select(Event).order_by(Event.id)).all()
    return [(e.kind, e.actor, e.detail) for e in rows if e.kind.startswith("console.seat")]


def test_the_password_printed_is_the_one_whose_ha1_is_stored_and_nowhere_else(
    hotline: Run, engine: Engine
) -> None:
    code, out, err = hotline("add", "8001", "--user", "zhang")
    password = out.strip()
    assert code == 0 and len(password) == 20 and password.isalnum()
    assert "shown once" in err
    assert "INSERT INTO seats" in err  # the statements were logged, parameters and all
    seat = seat_of(engine, "8001")
    assert seat is not None
    expected = hashlib.md5(f"8001:{REALM}:{password}".encode()).hexdigest()
    assert (seat.realm, seat.ha1, seat.state) == (REALM, expected, "signed_out")
    assert seat.state_since == seat.created_at == seat.updated_at
    assert password not in everything_stored(engine)
    assert password not in err

    code, out, err = hotline("reset-password", "8001")
    again = out.strip()
    assert code == 0 and len(again) == 20 and again != password
    seat = seat_of(engine, "8001")
    assert seat is not None
    assert seat.ha1 == hashlib.md5(f"8001:{REALM}:{again}".encode()).hexdigest()
    stored = everything_stored(engine)
    assert again not in stored and password not in stored and again not in err

    assert [(kind, detail) for kind, _, detail in events(engine)] == [
        ("console.seat_added", {"seat": "8001", "username": "zhang"}),
        ("console.seat_password_reset", {"seat": "8001", "username": "zhang"}),
    ]
    assert all(actor.startswith("cli:") for _, actor, _ in events(engine))


def test_seats_list_json_is_the_documented_shape_without_the_ha1(
    hotline: Run, engine: Engine
) -> None:
    hotline("add", "8002", "--user", "li")
    hotline("add", "desk.1", "--user", "zhang")
    assert hotline("state", "desk.1", "available")[0] == 0
    code, out, _ = hotline("list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["username"], r["user"], r["display_name"], r["state"]) for r in rows] == [
        ("8002", "li", "Li", "signed_out"),
        ("desk.1", "zhang", "Zhang", "available"),
    ]
    assert all(set(r) == LIST_KEYS and r["realm"] == REALM for r in rows)
    desk = seat_of(engine, "desk.1")
    assert desk is not None and desk.ha1 not in out
    assert rows[1]["state_since"] == desk.state_since.isoformat().replace("+00:00", "Z")
    code, out, _ = hotline("list")
    first = seat_of(engine, "8002")
    assert first is not None
    li, zhang = (s.state_since.astimezone(SHANGHAI) for s in (first, desk))
    shown = [
        f"8002  li  signed_out since {li:%Y-%m-%d %H:%M}",
        f"desk.1  zhang  available since {zhang:%Y-%m-%d %H:%M}",
    ]
    assert (code, out.splitlines()) == (0, shown)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("add", "8001", "--user", "li"), EXIT_USAGE, "seat '8001' exists"),
        (("add", "8003", "--user", "nobody"), EXIT_NOT_FOUND, "no console user 'nobody'"),
        (
            ("add", "8003", "--user", "wang"),
            EXIT_USAGE,
            "console user 'wang' is a supervisor, not an operator",
        ),
        (
            ("add", "8003", "--user", "zhang"),
            EXIT_USAGE,
            "console user 'zhang' already has seat '8001'",
        ),
        (
            ("add", "Desk 1", "--user", "li"),
            EXIT_USAGE,
            "seat name 'Desk 1': 1 to 32 of digits, a-z, '.', '_' or '-', "
            "starting with a digit or letter",
        ),
        (("reset-password", "9999"), EXIT_NOT_FOUND, "no seat '9999'"),
        (("remove", "9999"), EXIT_NOT_FOUND, "no seat '9999'"),
        (("state", "9999", "available"), EXIT_NOT_FOUND, "no seat '9999'"),
        (
            ("state", "8001", "busy"),
            EXIT_USAGE,
            "unknown state 'busy'; known: signed_out, available, on_break",
        ),
    ],
    ids=[
        "duplicate-name",
        "unknown-user",
        "not-an-operator",
        "second-seat",
        "bad-name",
        "reset-unknown",
        "remove-unknown",
        "state-unknown-seat",
        "unknown-state",
    ],
)
def test_a_refused_change_is_one_line_with_its_exit_code_and_changes_nothing(
    hotline: Run, engine: Engine, args: tuple[str, ...], code: int, message: str
) -> None:
    assert hotline("add", "8001", "--user", "zhang")[0] == 0
    before = everything_stored(engine)
    got, out, err = hotline(*args)
    refusals = [line for line in err.splitlines() if line.startswith("hotline: ")]
    assert (got, out, refusals) == (code, "", [f"hotline: {message}"])
    assert everything_stored(engine) == before


def test_a_state_change_keeps_its_time_and_is_refused_once_the_user_is_no_operator(
    engine: Engine,
) -> None:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        accounts.add_user(session, "zhang", "Zhang", "operator", "Pw-long-enough-1", NOW)
        seats.add(session, "8001", "zhang", SETTINGS, now=NOW, actor="console:admin")
    later, latest = NOW + timedelta(minutes=5), NOW + timedelta(minutes=9)
    with sessions.begin() as session:
        seats.set_state(session, "8001", "available", now=later, actor="console:zhang")
    with sessions.begin() as session:
        seats.set_state(session, "8001", "available", now=latest, actor="console:zhang")
    with sessions.begin() as session:
        seat = seats.find(session, "8001")
        assert (seat.state, seat.state_since, seat.updated_at) == ("available", later, later)
        seats.set_state(session, "8001", "on_break", now=latest, actor="console:zhang")
    with sessions() as session:
        seat = seats.find(session, "8001")
        assert (seat.state, seat.state_since, seat.created_at) == ("on_break", latest, NOW)
    assert [(kind, actor, detail.get("state")) for kind, actor, detail in events(engine)] == [
        ("console.seat_added", "console:admin", None),
        ("console.seat_state_changed", "console:zhang", "available"),
        ("console.seat_state_changed", "console:zhang", "on_break"),
    ]
    with sessions.begin() as session:
        session.execute(update(ConsoleUser).values(role="leader"))
    with sessions.begin() as session, pytest.raises(seats.SeatRefused) as refused:
        seats.set_state(session, "8001", "available", now=latest, actor="console:zhang")
    assert str(refused.value) == "console user 'zhang' is a leader, not an operator"


def test_a_removed_seat_is_gone_audited_and_its_name_free_again(
    hotline: Run, engine: Engine
) -> None:
    hotline("add", "8001", "--user", "zhang")
    assert hotline("remove", "8001")[:2] == (0, "removed seat 8001\n")
    assert seat_of(engine, "8001") is None
    assert hotline("add", "8001", "--user", "li")[0] == 0
    seat = seat_of(engine, "8001")
    with make_sessionmaker(engine)() as session:
        li = session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == "li"))
    assert seat is not None and seat.user_id == li
    assert [(kind, detail) for kind, _, detail in events(engine)] == [
        ("console.seat_added", {"seat": "8001", "username": "zhang"}),
        ("console.seat_removed", {"seat": "8001", "username": "zhang"}),
        ("console.seat_added", {"seat": "8001", "username": "li"}),
    ]
