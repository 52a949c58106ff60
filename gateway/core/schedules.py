"""A year's holiday arrangement the city loads before chinese-calendar knows it: read from a
small YAML or CSV file, checked, and kept as `<year>.yaml` in `deadlines.calendar_dir`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from gateway.core.deadlines import YearSchedule

# CSV `kind` column: what a row says the date is.
_HOLIDAY = {"holiday", "休", "假"}
_WORKDAY = {"workday", "班", "上班"}


class _Loader(yaml.SafeLoader):
    """YAML's safe loader with dates left as text, so a bad one (2027-13-01) is named here
    rather than failing inside the loader."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ScheduleError(ValueError):
    """A schedule file that cannot be used; the message is one line for the operator."""


def parse_schedule(text: str, suffix: str) -> YearSchedule:
    """A schedule from a file's text: `.csv` rows `date,kind` (kind holiday/休 or
    workday/班, a header row allowed), anything else YAML with `holidays` and `workdays`
    lists (and optionally `year`). A date may be a range `2027-02-05..2027-02-11`."""
    if suffix.lower() == ".csv":
        year, holidays, workdays = None, *_from_csv(text)
    else:
        year, holidays, workdays = _from_yaml(text)
    return _checked(year, holidays, workdays)


def dump_schedule(schedule: YearSchedule) -> str:
    """The file `hotline calendar import` writes and the gateway reads (YAML, sorted)."""
    return (
        f"# {schedule.year}年节假日安排 (written by `hotline calendar import`)\n"
        + yaml.safe_dump(
            {
                "year": schedule.year,
                "holidays": sorted(schedule.holidays),
                "workdays": sorted(schedule.workdays),
            },
            sort_keys=False,
        )
    )


def load_schedules(directory: Path) -> tuple[YearSchedule, ...]:
    """Every `<year>.yaml` in `directory` (none if it does not exist)."""
    if not directory.is_dir():
        return ()
    found = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            schedule = parse_schedule(path.read_text(encoding="utf-8"), path.suffix)
        except (OSError, ScheduleError) as exc:
            raise ScheduleError(f"{path}: {exc}") from None
        if path.stem != str(schedule.year):
            raise ScheduleError(f"{path}: holds {schedule.year}, not {path.stem}")
        found.append(schedule)
    return tuple(found)


def _from_yaml(text: str) -> tuple[Any, list[date], list[date]]:
    try:
        loaded = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ScheduleError(f"not valid YAML: {first}") from None
    if not isinstance(loaded, dict):
        raise ScheduleError("expected a mapping with holidays and workdays lists")
    unknown = set(loaded) - {"year", "holidays", "workdays"}
    if unknown:
        raise ScheduleError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    return (
        loaded.get("year"),
        _dates(loaded.get("holidays"), "holidays"),
        _dates(loaded.get("workdays"), "workdays"),
    )


def _from_csv(text: str) -> tuple[list[date], list[date]]:
    holidays: list[date] = []
    workdays: list[date] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 2:
            raise ScheduleError(f"line {number}: expected two columns, date and kind")
        when, kind = cells
        if number == 1 and when.lower() == "date":
            continue
        if kind.lower() in _HOLIDAY:
            holidays += _span(when, f"line {number}")
        elif kind.lower() in _WORKDAY:
            workdays += _span(when, f"line {number}")
        else:
            raise ScheduleError(
                f"line {number}: kind {kind!r} is neither holiday (休) nor workday (班)"
            )
    return holidays, workdays


def _dates(value: Any, key: str) -> list[date]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScheduleError(f"{key}: expected a list of dates")
    days: list[date] = []
    for item in value:
        days += _span(str(item), key)
    return days


def _span(text: str, where: str) -> list[date]:
    first_text, _, last_text = text.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if last_text else first
    except ValueError:
        raise ScheduleError(f"{where}: {text!r} is not a date (2027-01-01) or range") from None
    if last < first:
        raise ScheduleError(f"{where}: the range {text!r} ends before it starts")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _checked(year: Any, holidays: Iterable[date], workdays: Iterable[date]) -> YearSchedule:
    off, worked = frozenset(holidays), frozenset(workdays)
    if not off:
        raise ScheduleError("no holidays: a year's schedule lists its days off")
    years = {day.year for day in off | worked}
    if len(years) > 1:
        raise ScheduleError(f"dates of more than one year ({', '.join(map(str, sorted(years)))})")
    [found] = years
    if year is not None and year != found:
        raise ScheduleError(f"year says {year} but the dates are in {found}")
    if both := off & worked:
        raise ScheduleError(f"{min(both)} is both a holiday and a make-up working day")
    if weekday := sorted(day for day in worked if day.weekday() < 5):
        raise ScheduleError(
            f"{weekday[0]} is a weekday: a make-up working day (调休) is a Saturday or Sunday"
        )
    return YearSchedule(found, off, worked)
