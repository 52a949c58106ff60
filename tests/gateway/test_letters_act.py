"""`hotline letters act`: every refusal is one line on stderr and exit 2, never a traceback;
--promised-at takes the form docs/cli.md shows and is stored in UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway import letters_cli
from gateway.cli import main
from gateway.cli_common import EXIT_USAGE
from gateway.contract.config import Config
from gateway.core.actions import ACTIONS
from gateway.core.workflow import Actor, WorkflowError
from gateway.engine.dispatch import workflow_for
from store import letters
from store.models import Assignment
from tests.conftest import Parts, make_contact

LEADER = "department:li@city-admin"
Run = Callable[..., int]


@pytest.fixture
def act(
    database_url: str,
    engine: Engine,
    parts: Parts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, Run]:
    config = tmp_path / "config.yaml"
    config.write_text(
        "routing:\n  departments:\n    - {code: city-admin, name: 市城市管理局}\n", "utf-8"
    )
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    monkeypatch.setattr(letters_cli, "engine_for", lambda config: engine)  # disposed after
    number = parts.intake.accept_sync(make_contact(1)).tracking_number
    assert number

    def run(*args: str) -> int:
        return main(["--config", str(config), "letters", "act", number, *args])

    return number, run


def assert_refused(capsys: pytest.CaptureFixture[str], code: int, fragment: str) -> None:
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert len(err.strip().splitlines()) == 1, err
    assert fragment in err
    assert "Traceback" not in err and "unexpected error" not in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["assign", "--as", "operator:zhang"], "assign needs --department"),
        (["answer", "--as", "operator:zhang"], "answer needs --text"),
        (["instruct", "--as", "leader:wang", "--department", "city-admin"], "needs --text"),
        (["instruct", "--as", "leader:wang", "--text", "速办"], "needs --department"),
        (["reject", "--as", "operator:zhang"], "reject needs --reason"),
        (["reject", "--as", "operator:zhang", "--reason", "nonsense"], "rejection reason"),
        (["reclassify", "--as", "operator:zhang"], "reclassify needs --category"),
        (["reclassify", "--as", "operator:zhang", "--category", "nonsense"], "category"),
        (["reply", "--as", LEADER], "reply needs --text"),
        (["reply", "--as", LEADER, "--text", "办理中", "--interim"], "needs --promised-at"),
        (
            ["reply", "--as", LEADER, "--text", "办理中", "--interim", "--promised-at", "soon"],
            "not an ISO date",
        ),
        (["opinion", "--as", LEADER], "opinion needs --text"),
        (["return", "--as", LEADER], "return needs --reason"),
        (["return", "--as", LEADER, "--reason", "  "], "return needs --reason"),
        (["extend", "--as", LEADER], "extend needs --reason"),
        (["assign", "--as", "operator:zhang", "--department", "nope"], "nope"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_missing_or_malformed_argument_is_one_line_and_exit_2(
    act: tuple[str, Run], capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    _, run = act
    assert_refused(capsys, run(*args), fragment)


@pytest.mark.parametrize("verb", sorted(ACTIONS))
@pytest.mark.parametrize("who", ["operator:zhang", LEADER])
def test_no_action_ends_in_a_traceback(
    act: tuple[str, Run], capsys: pytest.CaptureFixture[str], verb: str, who: str
) -> None:
    """Every action, with nothing but --as, on a letter just received: done, or refused in
    one line with exit 2."""
    _, run = act
    code = run(verb, "--as", who)
    err = capsys.readouterr().err
    assert code in (0, EXIT_USAGE), err
    assert len(err.strip().splitlines()) == (code != 0), err
    assert "Traceback" not in err and "unexpected error" not in err


def test_an_extension_needs_a_reason_in_the_core_too(
    act: tuple[str, Run], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    number, run = act
    assert run("assign", "--as", "operator:zhang", "--department", "city-admin") == 0
    assert run("sign", "--as", LEADER) == 0
    workflow = workflow_for(Config(), lambda: datetime.now(UTC))
    with Session(engine) as session:
        letter = letters.find_by_tracking_number(session, number)
        assert letter is not None
        with pytest.raises(WorkflowError, match="needs a reason"):
            workflow.request_extension(session, letter, "", Actor("department", "li", "city-admin"))


@pytest.mark.parametrize(
    ("promised", "stored"),
    [
        ("2026-12-20", datetime(2026, 12, 20, 9, 30, tzinfo=UTC)),  # 17:30 in Shanghai
        ("2026-12-20T12:00", datetime(2026, 12, 20, 4, 0, tzinfo=UTC)),
        ("2026-12-20T12:00+00:00", datetime(2026, 12, 20, 12, 0, tzinfo=UTC)),
    ],
    ids=["date", "local-time", "time-with-zone"],
)
def test_an_interim_reply_takes_a_date_or_a_local_time_and_stores_utc(
    act: tuple[str, Run],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    promised: str,
    stored: datetime,
) -> None:
    number, run = act
    assert run("assign", "--as", "operator:zhang", "--department", "city-admin") == 0
    assert run("sign", "--as", LEADER) == 0
    code = run(
        "reply", "--as", LEADER, "--text", "正在办理", "--interim", "--promised-at", promised
    )
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip().endswith(f"{number}: promised")
    with Session(engine) as session:
        assignment = session.scalars(select(Assignment)).one()
        assert assignment.promised_at == stored


@pytest.mark.parametrize(
    ("answer", "status", "satisfaction"),
    [
        (("--satisfaction", "mostly_satisfied"), "closed", "mostly_satisfied"),
        (("--no-satisfied",), "signed", "unsatisfied"),
        ((), "closed", "satisfied"),
    ],
    ids=["mostly", "no-satisfied", "default"],
)
def test_an_operators_visit_records_how_satisfied_the_citizen_is(
    act: tuple[str, Run],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    answer: tuple[str, ...],
    status: str,
    satisfaction: str,
) -> None:
    number, run = act
    assert run("assign", "--as", "operator:zhang", "--department", "city-admin") == 0
    assert run("sign", "--as", LEADER) == 0
    assert run("reply", "--as", LEADER, "--text", "已修好") == 0
    code = run("visit", "--as", "operator:zhang", *answer)
    assert code == 0, capsys.readouterr().err
    with Session(engine) as session:
        letter = letters.find_by_tracking_number(session, number)
        assert letter is not None
        assert (letter.status, letter.satisfaction) == (status, satisfaction)
