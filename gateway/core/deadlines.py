"""Deadlines in Chinese working days and hours, and the report periods (旬, ISO weeks, months)."""

from __future__ import annotations

import calendar
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays

log = logging.getLogger(__name__)

ONE_DAY = timedelta(days=1)
# A half-open interval [start, end) of aware UTC datetimes.
Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class YearSchedule:
    """One year's holiday arrangement as the State Council publishes it each autumn: the days
    off (holidays) and the weekend days worked instead (make-up working days, 调休). Every
    other day of the year is a working day from Monday to Friday."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]


class WorkCalendar:
    """The working days and office hours of the city's departments, in one time zone.

    Whether a date is a working day comes, in order, from the caller's `extra_workdays` and
    `extra_holidays` (a local holiday); a year's schedule the city loaded (`schedules`, from
    `hotline calendar import`), which wins over the packages and leaves them out for its
    year; chinese-calendar (the State Council's published schedule with its make-up working
    days, 调休); for a year chinese-calendar does not know, the `holidays` package; failing
    both, Monday to Friday. Leaving chinese-calendar logs one warning per year. Build one
    calendar per process: it caches every date it answers.
    """

    def __init__(
        self,
        zone: ZoneInfo,
        day_start: time = time(9),
        day_end: time = time(17, 30),
        extra_holidays: frozenset[date] = frozenset(),
        extra_workdays: frozenset[date] = frozenset(),
        schedules: Iterable[YearSchedule] = (),
    ) -> None:
        if day_start.tzinfo is not None or day_end.tzinfo is not None:
            raise ValueError("day_start and day_end are wall-clock times in zone: give no tzinfo")
        if not day_start < day_end:
            raise ValueError(f"day_start {day_start} is not before day_end {day_end}")
        if both := extra_holidays & extra_workdays:
            raise ValueError(f"dates both extra holidays and extra workdays: {sorted(both)}")
        self.zone = zone
        self.day_start = day_start
        self.day_end = day_end
        self.extra_holidays = extra_holidays
        self.extra_workdays = extra_workdays
        self.schedules = {schedule.year: schedule for schedule in schedules}
        self._days: dict[date, bool] = {}
        self._fallbacks: dict[int, holidays.HolidayBase | None] = {}

    def is_working_day(self, day: date) -> bool:
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = self._lookup(day)
        return known

    def knows(self, year: int) -> bool:
        """Whether `year`'s holiday arrangement is known (loaded by the city or in
        chinese-calendar), so its deadlines count make-up working days."""
        if year in self.schedules:
            return True
        try:
            chinese_calendar.is_workday(date(year, 1, 1))
        except NotImplementedError:
            return False
        return True

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        day += ONE_DAY
        while not self.is_working_day(day):
            day += ONE_DAY
        return day

    def receipt_day(self, moment: datetime) -> date:
        """The working day on which something arriving at `moment` counts as received.

        That is the local date of `moment` if it is a working day and `moment` is before
        `day_end` (early mornings count: the office has the whole day); otherwise, at or after
        `day_end` or on a weekend or holiday, the next working day.
        """
        local = self._local(moment)
        if self.is_working_day(local.date()) and local.time() < self.day_end:
            return local.date()
        return self.next_working_day(local.date())

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The deadline, as aware UTC, for a letter received at `start` with `days` working days.

        It is `day_end` (local) of the `days`-th working day after the day of receipt (see
        `receipt_day`); the day of receipt itself does not count. So a letter received Monday
        10:00 with 3 days is due Thursday 17:30; one received Friday 18:00 counts as received
        Monday, and with 1 day is due Tuesday 17:30. `days=0` gives the end of the day of
        receipt.
        """
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        day = self.receipt_day(start)
        for _ in range(days):
            day = self.next_working_day(day)
        return self._at(day, self.day_end)

    def extend(self, due: datetime, days: int) -> datetime:
        """A deadline `due` moved on by `days` working days (an approved extension, 延期).

        It is `day_end` of the `days`-th working day after the local date of `due`: the old
        due date was the department's own last day, so it does not count again. Not
        `add_working_days(due, days)`, which takes a deadline at `day_end` as received the
        next working day and so gives one day more (Wednesday 16 December 2026 with 5 days
        is Wednesday the 23rd, not Thursday the 24th).
        """
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        day = self._local(due).date()
        for _ in range(days):
            day = self.next_working_day(day)
        return self._at(day, self.day_end)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The deadline, as aware UTC, `hours` of office time after `start` (urgent letters).

        The clock runs only from `day_start` to `day_end` on working days; a letter received
        outside them starts at the next opening. A deadline that uses up a day exactly is that
        day's `day_end`, not the next morning.
        """
        if not (math.isfinite(hours) and hours >= 0):
            raise ValueError(f"hours must be a finite number >= 0, got {hours}")
        remaining = timedelta(hours=hours)
        day = self._local(start).date()
        cursor = start.astimezone(UTC)
        while True:
            if self.is_working_day(day):
                # Elapsed time in UTC, so a zone with daylight saving still counts real hours.
                begin = max(cursor, self._at(day, self.day_start))
                closes = self._at(day, self.day_end)
                if begin < closes:
                    if remaining <= closes - begin:
                        return begin + remaining
                    remaining -= closes - begin
            day = self.next_working_day(day)

    def working_days_between(self, start: datetime, end: datetime) -> int:
        """Working days after the local date of `start` up to and including that of `end`.

        Negative when `end` is earlier. A reply on the due date is 0 days late even after
        `day_end`. For a `start` before `day_end` on a working day this inverts
        `add_working_days`.
        """
        first, last = self._local(start).date(), self._local(end).date()
        sign = 1
        if last < first:
            first, last, sign = last, first, -1
        span = (last - first).days
        return sign * sum(self.is_working_day(first + timedelta(n)) for n in range(1, span + 1))

    def same_working_day(self, a: datetime, b: datetime) -> bool:
        """Whether `a` and `b` fall on the same working day, e.g. a letter's assignment and return.

        The regulations let a department return a letter only on the working day it was
        assigned. Both instants are mapped by `receipt_day`, so a letter assigned after hours or
        on a holiday may still be returned on the next working day, while a return after
        `day_end` belongs to the following one.
        """
        return self.receipt_day(a) == self.receipt_day(b)

    def _local(self, moment: datetime) -> datetime:
        if moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: give an aware one")
        return moment.astimezone(self.zone)

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)

    def _lookup(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if (schedule := self.schedules.get(day.year)) is not None:
            if day in schedule.workdays:
                return True
            return day not in schedule.holidays and day.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a year outside the installed release's data
            pass
        fallback = self._fallback(day.year)
        if fallback is None:
            return day.weekday() < 5
        return fallback.is_working_day(day)

    def _fallback(self, year: int) -> holidays.HolidayBase | None:
        if year in self._fallbacks:
            return self._fallbacks[year]
        china = holidays.country_holidays("CN", years=year)
        fallback: holidays.HolidayBase | None = china
        if not any(day.year == year for day in china):
            fallback, source = None, "counting Monday to Friday as working days"
        elif any(day.year == year for day in china.weekend_workdays):
            source = "using the published schedule in the holidays package"
        else:
            # Past its published schedules the holidays package computes the statutory days
            # (lunar ones too) and moves those on a weekend to the next weekday, but it cannot
            # know the make-up working days (调休): near a long holiday a deadline can be a few
            # days off either way, until the schedule is published or set in the overrides.
            source = "using the holidays package's estimate, which has no make-up working days"
        log.warning(
            "chinese-calendar %s has no schedule for %d: %s; load the State Council's "
            "schedule with `hotline calendar import FILE` or upgrade chinese-calendar",
            chinese_calendar.__version__,
            year,
            source,
        )
        self._fallbacks[year] = fallback
        return fallback


_PARTS = "上中下"
_TEN_DAYS_ISO = re.compile(r"([0-9]{4})-([0-9]{1,2})-(?:([1-3上中下])旬|[tT]([1-3]))")
_TEN_DAYS_ZH = re.compile(r"([0-9]{4})年([0-9]{1,2})月([上中下])旬")
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{1,2})")
_RANGE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\.\.([0-9]{4}-[0-9]{2}-[0-9]{2})")
_TEN_DAYS_FORMS = "2026-11-上旬 (中旬, 下旬), 2026-11-1旬 (2旬, 3旬), 2026-11-t1 (t2, t3)"
_PERIOD_FORMS = (
    f"a ten-day period ({_TEN_DAYS_FORMS}), an ISO week (2026-W48), a month (2026-11) "
    "or a range of dates, both included (2026-11-01..2026-11-30)"
)


@dataclass(frozen=True, order=True)
class TenDays:
    """A ten-day period (旬): part 1 is days 1-10, 2 is 11-20, 3 is 21 to the end of the month."""

    year: int
    month: int
    part: int

    def __post_init__(self) -> None:
        if not (MINYEAR <= self.year <= MAXYEAR and 1 <= self.month <= 12 and 1 <= self.part <= 3):
            raise ValueError(f"no ten-day period {self.part} in {self.year}-{self.month}")

    @classmethod
    def containing(cls, day: date) -> TenDays:
        return cls(day.year, day.month, min(3, (day.day + 9) // 10))

    @classmethod
    def parse(cls, text: str) -> TenDays:
        """Read `2026-11-上旬`, `2026-11-1旬`, `2026-11-t1` or this class's own `str()`."""
        try:
            found = _match_ten_days(text.strip())
            if found is None:
                raise ValueError("unrecognised form")
        except ValueError as exc:
            raise ValueError(
                f"bad ten-day period {text!r} ({exc}); accepted forms: {_TEN_DAYS_FORMS}"
            ) from None
        return found

    @property
    def start(self) -> date:
        return date(self.year, self.month, 10 * self.part - 9)

    @property
    def end(self) -> date:
        """The last day, included."""
        if self.part == 3:
            return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])
        return date(self.year, self.month, 10 * self.part)

    def __str__(self) -> str:
        return f"{self.year}年{self.month}月{_PARTS[self.part - 1]}旬"


def _match_ten_days(text: str) -> TenDays | None:
    if match := _TEN_DAYS_ISO.fullmatch(text):
        year, month, label, ascii_part = match.groups()
        part = label or ascii_part
    elif match := _TEN_DAYS_ZH.fullmatch(text):
        year, month, part = match.groups()
    else:
        return None
    return TenDays(int(year), int(month), _PARTS.index(part) + 1 if part in _PARTS else int(part))


def parse_period(text: str, zone: ZoneInfo) -> Period:
    """The UTC interval [start, end) of a report period named by `text`, days reckoned in `zone`."""
    try:
        first, after = _period_days(text.strip())
        return _midnight(first, zone), _midnight(after, zone)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"bad period {text!r} ({exc}); accepted forms: {_PERIOD_FORMS}") from None


def _period_days(text: str) -> tuple[date, date]:
    """The first day of the period and the day after its last."""
    if match := _WEEK.fullmatch(text):
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        return monday, monday + timedelta(days=7)
    if match := _MONTH.fullmatch(text):
        first = date(int(match[1]), int(match[2]), 1)
        return first, (first + timedelta(days=31)).replace(day=1)
    if match := _RANGE.fullmatch(text):
        first, last = date.fromisoformat(match[1]), date.fromisoformat(match[2])
        if last < first:
            raise ValueError("the range ends before it starts")
        return first, last + ONE_DAY
    if ten := _match_ten_days(text):
        return ten.start, ten.end + ONE_DAY
    raise ValueError("unrecognised form")


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
