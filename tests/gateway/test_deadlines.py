"""Deadlines follow the real Chinese working calendar, office hours and the hotline's periods."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.deadlines import TenDays, WorkCalendar, YearSchedule, parse_period

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(SHANGHAI)
FAST = settings(max_examples=200, deadline=None, database=None)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.core.deadlines"]


# Checked against chinese-calendar 1.11: 2025 National Day and Mid-Autumn are off 10-01..10-08
# with Sunday 09-28 and Saturday 10-11 worked; Spring Festival 2026 is off 02-15..02-23 with
# Saturdays 02-14 and 02-28 worked.
DAYS = [
    pytest.param(local("2026-11-23 10:00"), 3, local("2026-11-26 17:30"), id="monday-10:00+3"),
    pytest.param(local("2026-11-23 07:00"), 1, local("2026-11-24 17:30"), id="before-opening"),
    pytest.param(local("2026-11-27 17:29"), 1, local("2026-11-30 17:30"), id="friday-17:29+1"),
    pytest.param(local("2026-11-27 17:30"), 1, local("2026-12-01 17:30"), id="friday-at-close+1"),
    pytest.param(local("2026-11-27 18:00"), 1, local("2026-12-01 17:30"), id="friday-evening+1"),
    pytest.param(local("2026-11-28 11:00"), 1, local("2026-12-01 17:30"), id="saturday+1"),
    pytest.param(local("2026-11-23 10:00"), 0, local("2026-11-23 17:30"), id="zero-days"),
    pytest.param(
        utc("2026-11-26 16:30"), 1, local("2026-11-30 17:30"), id="utc-evening-local-0:30"
    ),
    pytest.param(utc("2026-11-26 09:00"), 1, local("2026-11-27 17:30"), id="utc-9:00-local-17:00"),
    pytest.param(local("2025-09-30 20:00"), 3, local("2025-10-13 17:30"), id="eve-of-national-day"),
    pytest.param(
        local("2025-09-26 10:00"), 2, local("2025-09-29 17:30"), id="across-working-sunday"
    ),
    pytest.param(local("2025-09-27 10:00"), 1, local("2025-09-29 17:30"), id="saturday-before-it"),
    pytest.param(
        local("2026-02-13 10:00"), 3, local("2026-02-25 17:30"), id="into-spring-festival"
    ),
    pytest.param(
        local("2026-02-18 10:00"), 5, local("2026-03-02 17:30"), id="during-spring-festival"
    ),
]


@pytest.mark.parametrize(("start", "days", "due"), DAYS)
def test_a_deadline_is_the_close_of_the_nth_working_day_after_receipt(
    start: datetime, days: int, due: datetime
) -> None:
    result = CALENDAR.add_working_days(start, days)
    assert result == due
    assert result.tzinfo is UTC


def test_make_up_working_days_and_holidays_come_from_the_published_schedule() -> None:
    assert CALENDAR.is_working_day(date(2025, 9, 28))  # a Sunday worked for National Day
    assert CALENDAR.is_working_day(date(2026, 2, 28))  # a Saturday worked for Spring Festival
    assert not CALENDAR.is_working_day(date(2025, 10, 8))  # a Wednesday off
    assert CALENDAR.next_working_day(date(2025, 9, 30)) == date(2025, 10, 9)


def test_the_city_overrides_win_over_the_packages() -> None:
    calendar = WorkCalendar(
        SHANGHAI,
        extra_holidays=frozenset({date(2026, 11, 25), date(2025, 9, 28)}),
        extra_workdays=frozenset({date(2026, 11, 28), date(2025, 10, 1)}),
    )
    assert not calendar.is_working_day(date(2025, 9, 28))
    assert calendar.is_working_day(date(2025, 10, 1))
    assert calendar.add_working_days(local("2026-11-23 10:00"), 3) == local("2026-11-27 17:30")
    assert calendar.add_working_days(local("2026-11-27 10:00"), 1) == local("2026-11-28 17:30")


def test_a_year_past_chinese_calendar_uses_the_estimate_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = WorkCalendar(SHANGHAI)
    with caplog.at_level(logging.WARNING):
        assert not calendar.is_working_day(date(2090, 10, 2))  # a Monday, National Day
        assert calendar.is_working_day(date(2090, 11, 6))
        calendar.add_working_days(local("2090-09-29 10:00"), 10)
    [message] = warnings_from(caplog)
    assert "2090" in message
    assert "upgrade chinese-calendar" in message
    assert "estimate" in message


def test_a_year_chinese_calendar_lacks_falls_back_to_the_holidays_schedule(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unknown(day: date) -> bool:
        raise NotImplementedError(f"no available data for year {day.year}")

    monkeypatch.setattr(chinese_calendar, "is_workday", unknown)
    calendar = WorkCalendar(SHANGHAI)
    with caplog.at_level(logging.WARNING):
        assert calendar.is_working_day(date(2024, 9, 29))  # a Sunday worked for National Day
        assert not calendar.is_working_day(date(2024, 10, 4))
    [message] = warnings_from(caplog)
    assert "2024" in message
    assert "published schedule" in message


def test_a_year_no_package_knows_counts_monday_to_friday_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def knows_nothing(country: str, years: int) -> holidays.HolidayBase:
        return holidays.HolidayBase()

    monkeypatch.setattr(holidays, "country_holidays", knows_nothing)
    calendar = WorkCalendar(SHANGHAI)
    with caplog.at_level(logging.WARNING):
        week = [calendar.is_working_day(date(2090, 10, 2) + timedelta(n)) for n in range(7)]
        due = calendar.add_working_days(local("2090-10-06 18:00"), 1)  # Friday evening
    assert week == [True] * 5 + [False] * 2
    assert due == local("2090-10-10 17:30")
    [message] = warnings_from(caplog)
    assert "2090" in message
    assert "Monday to Friday" in message


# Hand-counted: the old due date is the department's own last day and does not count again.
EXTENSIONS = [
    pytest.param(local("2026-12-16 17:30"), 5, local("2026-12-23 17:30"), id="wednesday+5"),
    pytest.param(local("2026-11-27 17:30"), 5, local("2026-12-04 17:30"), id="friday+5"),
    pytest.param(local("2026-11-23 17:30"), 1, local("2026-11-24 17:30"), id="monday+1"),
    # Off 10-01..10-08, Saturday 10-11 worked: Thu 9, Fri 10, Sat 11, Mon 13, Tue 14.
    pytest.param(local("2025-09-30 17:30"), 5, local("2025-10-14 17:30"), id="national-day"),
    # Saturday 02-14 worked, off 02-15..02-23: Sat 14, Tue 24, Wed 25.
    pytest.param(local("2026-02-13 17:30"), 3, local("2026-02-25 17:30"), id="spring-festival"),
    pytest.param(local("2026-12-16 17:30"), 0, local("2026-12-16 17:30"), id="zero-days"),
]


@pytest.mark.parametrize(("due", "days", "extended"), EXTENSIONS)
def test_an_extension_adds_working_days_after_the_old_due_date(
    due: datetime, days: int, extended: datetime
) -> None:
    assert CALENDAR.extend(due, days) == extended
    assert CALENDAR.working_days_between(due, extended) == days


# A 2027 arrangement built for these tests (the State Council had not published the real one
# when they were written): 元旦 off Friday 1 to Monday 4 January, Saturday 9 January worked.
SCHEDULE_2027 = YearSchedule(
    2027,
    frozenset({date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3), date(2027, 1, 4)}),
    frozenset({date(2027, 1, 9)}),
)


def test_a_deadline_across_new_year_counts_the_loaded_schedule_and_its_make_up_day(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = WorkCalendar(SHANGHAI, schedules=[SCHEDULE_2027])
    with caplog.at_level(logging.WARNING):
        # Tuesday 29 December + 7: Wed 30, Thu 31, (off to Mon 4), Tue 5 .. Fri 8, Sat 9.
        due = calendar.add_working_days(local("2026-12-29 10:00"), 7)
        extended = calendar.extend(due, 1)
    assert due == local("2027-01-09 17:30")
    assert extended == local("2027-01-11 17:30")
    assert calendar.knows(2027) and not calendar.knows(2090)
    assert warnings_from(caplog) == []


def test_the_city_s_schedule_wins_over_chinese_calendar() -> None:
    # The package has Sunday 2026-01-04 worked and Friday 2026-01-02 off; a city's
    # schedule for 2026 saying otherwise is what counts, and so is every day it leaves out.
    calendar = WorkCalendar(
        SHANGHAI,
        schedules=[YearSchedule(2026, frozenset({date(2026, 1, 1)}), frozenset())],
    )
    assert CALENDAR.is_working_day(date(2026, 1, 4))
    assert not CALENDAR.is_working_day(date(2026, 1, 2))
    assert not calendar.is_working_day(date(2026, 1, 4))
    assert calendar.is_working_day(date(2026, 1, 2))
    assert calendar.is_working_day(date(2026, 2, 17))  # a Tuesday the package has off
    assert calendar.extra_holidays == frozenset()


def test_without_next_year_s_schedule_new_year_falls_back_to_the_estimate_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = WorkCalendar(SHANGHAI)
    with caplog.at_level(logging.WARNING):
        # Wed 30, Thu 31, (Fri 1 January off, a weekend, no make-up day) Mon 4 .. Fri 8.
        due = calendar.add_working_days(local("2026-12-29 10:00"), 7)
        calendar.add_working_days(local("2027-01-05 10:00"), 3)
    assert due == local("2027-01-08 17:30")
    assert not calendar.knows(2027)
    [message] = warnings_from(caplog)
    assert "2027" in message and "no make-up working days" in message
    assert "hotline calendar import" in message


HOURS = [
    pytest.param(local("2026-11-24 10:00"), 2, local("2026-11-24 12:00"), id="inside-one-day"),
    pytest.param(local("2026-11-24 16:30"), 2, local("2026-11-25 10:00"), id="across-a-night"),
    pytest.param(local("2026-11-27 17:00"), 4, local("2026-11-30 12:30"), id="across-a-weekend"),
    pytest.param(local("2026-11-28 11:00"), 1, local("2026-11-30 10:00"), id="received-saturday"),
    pytest.param(local("2026-11-24 07:00"), 1, local("2026-11-24 10:00"), id="before-opening"),
    pytest.param(local("2026-11-24 09:00"), 8.5, local("2026-11-24 17:30"), id="a-whole-day"),
    pytest.param(local("2026-11-24 10:00"), 0.25, local("2026-11-24 10:15"), id="a-quarter-hour"),
    pytest.param(local("2025-09-30 17:00"), 1, local("2025-10-09 09:30"), id="over-national-day"),
]


@pytest.mark.parametrize(("start", "hours", "due"), HOURS)
def test_urgent_hours_run_only_in_office_hours(
    start: datetime, hours: float, due: datetime
) -> None:
    assert CALENDAR.add_working_hours(start, hours) == due


SAME_DAY = [
    pytest.param(local("2026-11-23 10:00"), local("2026-11-23 16:00"), True, id="same-afternoon"),
    pytest.param(local("2026-11-23 10:00"), local("2026-11-24 09:30"), False, id="next-morning"),
    pytest.param(local("2026-11-23 10:00"), local("2026-11-23 18:00"), False, id="after-close"),
    pytest.param(
        local("2026-11-27 18:00"), local("2026-11-30 11:00"), True, id="friday-eve-monday"
    ),
    pytest.param(
        local("2026-11-27 18:00"), local("2026-11-27 19:00"), True, id="friday-eve-at-once"
    ),
    pytest.param(local("2026-11-28 10:00"), local("2026-11-30 11:00"), True, id="saturday-monday"),
    pytest.param(
        local("2025-09-30 20:00"), local("2025-10-09 10:00"), True, id="over-national-day"
    ),
    pytest.param(local("2025-09-30 20:00"), local("2025-10-10 10:00"), False, id="a-day-too-late"),
]


@pytest.mark.parametrize(("assigned", "returned", "allowed"), SAME_DAY)
def test_a_letter_may_be_returned_only_on_the_working_day_it_was_assigned(
    assigned: datetime, returned: datetime, allowed: bool
) -> None:
    assert CALENDAR.same_working_day(assigned, returned) is allowed


BETWEEN = [
    pytest.param(local("2026-11-23 10:00"), local("2026-11-26 17:30"), 3, id="monday-thursday"),
    pytest.param(local("2026-11-26 17:30"), local("2026-11-23 10:00"), -3, id="backwards"),
    pytest.param(local("2026-11-26 17:30"), local("2026-11-26 19:00"), 0, id="late-same-evening"),
    pytest.param(local("2026-11-26 17:30"), local("2026-11-30 09:00"), 2, id="over-a-weekend"),
    pytest.param(local("2025-09-30 17:30"), local("2025-10-09 09:00"), 1, id="over-national-day"),
]


@pytest.mark.parametrize(("start", "end", "days"), BETWEEN)
def test_working_days_between_counts_the_dates_after_start_up_to_end(
    start: datetime, end: datetime, days: int
) -> None:
    assert CALENDAR.working_days_between(start, end) == days


def test_a_calendar_refuses_bad_configuration_and_naive_times() -> None:
    with pytest.raises(ValueError, match="not before"):
        WorkCalendar(SHANGHAI, day_start=time(18), day_end=time(9))
    with pytest.raises(ValueError, match="both"):
        WorkCalendar(
            SHANGHAI,
            extra_holidays=frozenset({date(2026, 11, 23)}),
            extra_workdays=frozenset({date(2026, 11, 23)}),
        )
    with pytest.raises(ValueError, match="naive"):
        CALENDAR.add_working_days(datetime(2026, 11, 23, 10), 1)
    with pytest.raises(ValueError, match="negative"):
        CALENDAR.add_working_days(local("2026-11-23 10:00"), -1)
    with pytest.raises(ValueError, match="finite"):
        CALENDAR.add_working_hours(local("2026-11-23 10:00"), float("nan"))


TEN_DAYS_TEXT = [
    pytest.param("2026-11-1旬", TenDays(2026, 11, 1), id="digit"),
    pytest.param("2026-11-上旬", TenDays(2026, 11, 1), id="shang"),
    pytest.param("2026-11-中旬", TenDays(2026, 11, 2), id="zhong"),
    pytest.param("2026-11-下旬", TenDays(2026, 11, 3), id="xia"),
    pytest.param("2026-11-t2", TenDays(2026, 11, 2), id="ascii"),
    pytest.param(" 2026-1-T3 ", TenDays(2026, 1, 3), id="ascii-upper-short-month"),
    pytest.param("2026年11月上旬", TenDays(2026, 11, 1), id="own-str"),
]


@pytest.mark.parametrize(("text", "period"), TEN_DAYS_TEXT)
def test_a_ten_day_period_is_read_in_every_accepted_form(text: str, period: TenDays) -> None:
    assert TenDays.parse(text) == period


@pytest.mark.parametrize(
    "text", ["2026-11-4旬", "2026-13-上旬", "2026-11-t0", "2026-11", "2026-11-上", ""]
)
def test_a_bad_ten_day_period_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="t1"):
        TenDays.parse(text)


def test_a_ten_day_period_prints_in_chinese_and_knows_its_days() -> None:
    assert str(TenDays(2026, 11, 1)) == "2026年11月上旬"
    assert str(TenDays(2026, 12, 3)) == "2026年12月下旬"
    assert TenDays(2026, 11, 2).start == date(2026, 11, 11)
    assert TenDays(2026, 11, 2).end == date(2026, 11, 20)
    assert TenDays(2026, 2, 3).end == date(2026, 2, 28)
    assert TenDays(2024, 2, 3).end == date(2024, 2, 29)
    assert TenDays.containing(date(2026, 11, 10)) == TenDays(2026, 11, 1)
    assert TenDays.containing(date(2026, 12, 31)) == TenDays(2026, 12, 3)


PERIODS = [
    pytest.param("2026-11-上旬", "2026-11-01", "2026-11-11", id="ten-days"),
    pytest.param("2026-11-t3", "2026-11-21", "2026-12-01", id="last-ten-days"),
    pytest.param("2026-W48", "2026-11-23", "2026-11-30", id="iso-week"),
    pytest.param("2026-W53", "2026-12-28", "2027-01-04", id="iso-week-53"),
    pytest.param("2026-11", "2026-11-01", "2026-12-01", id="month"),
    pytest.param("2026-12", "2026-12-01", "2027-01-01", id="december"),
    pytest.param("2026-11-01..2026-11-30", "2026-11-01", "2026-12-01", id="range"),
    pytest.param("2026-11-27..2026-11-27", "2026-11-27", "2026-11-28", id="one-day-range"),
]


@pytest.mark.parametrize(("text", "first", "after"), PERIODS)
def test_a_period_is_a_half_open_interval_of_local_days(text: str, first: str, after: str) -> None:
    start, end = parse_period(text, SHANGHAI)
    assert (start, end) == (local(first), local(after))
    assert start.tzinfo is UTC
    assert start == utc(first) - timedelta(hours=8)


BAD_PERIODS = [
    pytest.param("next week", id="words"),
    pytest.param("", id="empty"),
    pytest.param("2026-W54", id="week-54"),
    pytest.param("2027-W53", id="week-53-in-a-52-week-year"),
    pytest.param("2026-13", id="month-13"),
    pytest.param("2026-11-30..2026-11-01", id="backwards-range"),
    pytest.param("2026-02-30..2026-03-01", id="february-30"),
    pytest.param("2026-11-4旬", id="fourth-ten-days"),
    pytest.param("9999-12-31..9999-12-31", id="past-the-last-date"),
]


@pytest.mark.parametrize("text", BAD_PERIODS)
def test_a_bad_period_is_refused_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"accepted forms: .*2026-W48.*2026-11-01\.\.2026-11-30"):
        parse_period(text, SHANGHAI)


STARTS = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2026, 12, 31, 23, 59),
    timezones=st.sampled_from([UTC, SHANGHAI, ZoneInfo("America/New_York")]),
    allow_imaginary=False,
)


@FAST
@given(start=STARTS, days=st.integers(min_value=1, max_value=20))
def test_a_deadline_is_a_later_working_day_close_and_grows_with_days(
    start: datetime, days: int
) -> None:
    due = CALENDAR.add_working_days(start, days)
    due_local = due.astimezone(SHANGHAI)
    assert CALENDAR.is_working_day(due_local.date())
    assert due_local.time() == time(17, 30)
    assert due > start
    assert CALENDAR.add_working_days(start, days + 1) > due


@FAST
@given(start=STARTS, days=st.integers(min_value=0, max_value=20))
def test_working_days_between_inverts_a_deadline_from_office_hours(
    start: datetime, days: int
) -> None:
    moment = start.astimezone(SHANGHAI)
    if CALENDAR.is_working_day(moment.date()) and moment.time() < time(17, 30):
        due = CALENDAR.add_working_days(start, days)
        assert CALENDAR.working_days_between(start, due) == days


@FAST
@given(start=STARTS, hours=st.floats(min_value=0.01, max_value=60))
def test_urgent_hours_end_inside_office_hours_on_a_working_day(
    start: datetime, hours: float
) -> None:
    due = CALENDAR.add_working_hours(start, hours).astimezone(SHANGHAI)
    assert CALENDAR.is_working_day(due.date())
    assert time(9) < due.time() <= time(17, 30)
    assert due > start


@FAST
@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_every_day_lies_in_its_ten_day_period_which_reads_back(day: date) -> None:
    period = TenDays.containing(day)
    assert period.start <= day <= period.end
    assert TenDays.parse(str(period)) == period
