"""`hotline calendar import FILE` checks a year's holiday schedule, puts it where the gateway
reads it, and refuses a bad file with one line and exit code 2 (docs/cli.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.cli_common import EXIT_USAGE
from gateway.contract.config import load_config
from gateway.contract.errors import ConfigurationError
from gateway.core.schedules import parse_schedule
from gateway.engine.dispatch import workflow_for
from tests.conftest import SHANGHAI

# The arrangement of tests/gateway/test_deadlines.py, as a city would type it.
GOOD_YAML = """\
year: 2027
holidays:
  - 2027-01-01..2027-01-04   # 元旦
  - 2027-02-05..2027-02-11   # 春节
workdays: [2027-01-09, 2027-02-20]
"""
GOOD_CSV = """\
date,kind
2027-01-01..2027-01-04,休
2027-02-05..2027-02-11,holiday
2027-01-09,班
2027-02-20,workday
"""


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("deadlines:\n  calendar_dir: holidays\n", encoding="utf-8")
    return path


def run(tmp_path: Path, name: str, text: str) -> int:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    return main(["--config", str(config_file(tmp_path)), "calendar", "import", str(source)])


@pytest.mark.parametrize(("name", "text"), [("2027.yaml", GOOD_YAML), ("2027.csv", GOOD_CSV)])
def test_an_imported_schedule_is_what_the_gateway_counts_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    assert run(tmp_path, name, text) == 0

    out = capsys.readouterr().out
    assert out.startswith("2027: 11 holiday(s), 2 make-up working day(s) -> ")
    written = tmp_path / "holidays" / "2027.yaml"
    assert parse_schedule(written.read_text(encoding="utf-8"), ".yaml") == parse_schedule(
        text, Path(name).suffix
    )
    calendar = workflow_for(load_config(config_file(tmp_path)), lambda: datetime.now(UTC)).calendar
    assert calendar.knows(2027)
    assert calendar.is_working_day(date(2027, 1, 9))  # a Saturday worked
    assert not calendar.is_working_day(date(2027, 2, 8))  # a Monday of Spring Festival
    due = calendar.add_working_days(datetime(2026, 12, 29, 10, 0, tzinfo=SHANGHAI), 7)
    assert due == datetime(2027, 1, 9, 17, 30, tzinfo=SHANGHAI)


BAD = [
    pytest.param("x.yaml", "holidays: [2027-01-01\n", "not valid YAML", id="not-yaml"),
    pytest.param("x.yaml", "- 2027-01-01\n", "expected a mapping", id="a-list"),
    pytest.param("x.yaml", "holiday: [2027-01-01]\n", "unknown key(s) holiday", id="typo"),
    pytest.param("x.yaml", "workdays: [2027-01-09]\n", "no holidays", id="no-holidays"),
    pytest.param("x.yaml", "holidays: [2027-13-01]\n", "'2027-13-01' is not a date", id="date"),
    pytest.param("x.yaml", "holidays: [2027-02-11..2027-02-05]\n", "ends before", id="range"),
    pytest.param(
        "x.yaml", "holidays: [2026-12-31, 2027-01-01]\n", "more than one year", id="two-years"
    ),
    pytest.param("x.yaml", "year: 2028\nholidays: [2027-01-01]\n", "year says 2028", id="year"),
    pytest.param(
        "x.yaml",
        "holidays: [2027-01-02]\nworkdays: [2027-01-02]\n",
        "2027-01-02 is both",
        id="both",
    ),
    pytest.param(
        "x.yaml",
        "holidays: [2027-01-01]\nworkdays: [2027-01-05]\n",
        "2027-01-05 is a weekday",
        id="weekday-worked",
    ),
    pytest.param("x.csv", "2027-01-01,休,extra\n", "line 1: expected two columns", id="columns"),
    pytest.param("x.csv", "date,kind\n2027-01-01,放假吧\n", "line 2: kind '放假吧'", id="kind"),
]


@pytest.mark.parametrize(("name", "text", "reason"), BAD)
def test_a_bad_file_is_refused_with_one_line_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, reason: str
) -> None:
    assert run(tmp_path, name, text) == EXIT_USAGE

    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"hotline: {tmp_path / name}: ") and reason in line
    assert not (tmp_path / "holidays").exists()


def test_a_missing_file_is_one_line_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "2027.yaml"
    code = main(["--config", str(config_file(tmp_path)), "calendar", "import", str(missing)])
    assert code == EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hotline: {missing}: cannot read")


def test_the_gateway_refuses_to_start_on_a_spoilt_schedule_file(tmp_path: Path) -> None:
    (tmp_path / "holidays").mkdir()
    (tmp_path / "holidays" / "2027.yaml").write_text("holidays: [2028-01-01]\n", "utf-8")
    with pytest.raises(ConfigurationError, match=r"deadlines.calendar_dir: .*2027.yaml: holds"):
        workflow_for(load_config(config_file(tmp_path)), lambda: datetime.now(UTC))
