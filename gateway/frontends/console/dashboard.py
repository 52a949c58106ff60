"""The statistics dashboard: a period's volume, departments, hot topics and 综合考评 as
tables and server-drawn SVG bars, the seats' queue (人工服务) today and in the period, and
the bulletin as CSV, Excel or JSON downloads."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlencode

from sqlalchemy.orm import Session
from starlette.responses import Response

from gateway.contract.kinds import lane_states
from gateway.contract.labels import CHANNEL_LABELS, LANE_LABELS
from gateway.core import reports, stats
from gateway.core.deadlines import TenDays, parse_period
from gateway.core.queue_figures import SERVICE_SECONDS, QueueFigures, SeatFigures, queue_figures
from gateway.core.stats import Bulletin, Count
from gateway.frontends.console.desk import HEADERS, Desk
from store import jobs

# A longer period is a report to run from the command line, not a page to wait for.
MAX_DAYS = 366
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PARTS = "上中下"
# Chart geometry, in SVG user units (the page scales the drawing to its column).
_ROW, _LABEL, _PLOT, _VALUE = 22, 120, 420, 80
_DAY_PLOT_HEIGHT, _DAY_AXIS = 160, 18
_T = TypeVar("_T")


@dataclass(frozen=True)
class Period:
    query: str  # what `period=` says for it in a link
    name: str  # 2026年11月下旬, 2026年11月, 2026-11-01至2026-11-30
    start: datetime  # UTC, included
    end: datetime  # UTC, excluded
    ten_days: TenDays | None


class BadPeriod(ValueError):
    """A period the user asked for that cannot be shown; the message is for the page."""


# -- the period ---------------------------------------------------------------------------


def period_of(desk: Desk) -> Period:
    """`period=` (any form `hotline report --period` takes), else `from=`/`to=` (dates,
    both included), else the ten-day period (旬) of today in the city."""
    zone = desk.tools.config.zone
    text = desk.query("period")
    first, last = desk.query("from"), desk.query("to")
    if not text and (first or last):
        if not (_DATE.fullmatch(first) and _DATE.fullmatch(last)):
            raise BadPeriod("请填写起止日期（年-月-日）。")
        text = f"{first}..{last}"
    if not text:
        today = TenDays.containing(desk.now.astimezone(zone).date())
        text = _ten_days_query(today)
    try:
        start, end = parse_period(text, zone)
    except ValueError:
        raise BadPeriod(
            "无法识别统计时段。可填写旬（2026-11-下旬）、月（2026-11）、周（2026-W48）"
            "或日期范围（2026-11-01..2026-11-30）。"
        ) from None
    if end - start > timedelta(days=MAX_DAYS):
        raise BadPeriod(f"统计时段不能超过 {MAX_DAYS} 天；更长的时段请用命令 hotline report。")
    try:
        ten_days: TenDays | None = TenDays.parse(text)
    except ValueError:
        ten_days = None
    return Period(text, _name(start, end, ten_days, desk), start, end, ten_days)


def _ten_days_query(t: TenDays) -> str:
    return f"{t.year}-{t.month:02d}-{_PARTS[t.part - 1]}旬"


def _name(start: datetime, end: datetime, ten_days: TenDays | None, desk: Desk) -> str:
    if ten_days is not None:
        return str(ten_days)
    zone = desk.tools.config.zone
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    if first.day == 1 and (last + timedelta(days=1)).day == 1 and first.month == last.month:
        return f"{first.year}年{first.month}月"
    return f"{first.isoformat()}至{last.isoformat()}"


def _shift(t: TenDays, parts: int) -> TenDays:
    index = t.year * 36 + (t.month - 1) * 3 + (t.part - 1) + parts
    return TenDays(index // 36, index % 36 // 3 + 1, index % 3 + 1)


def _choices(desk: Desk, period: Period) -> list[tuple[str, str]]:
    """Links to neighbouring periods: (label, query string)."""
    today = desk.now.astimezone(desk.tools.config.zone).date()
    current = TenDays.containing(today)
    month = date(today.year, today.month, 1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    shown = period.ten_days or current
    links = [
        ("上一旬", _ten_days_query(_shift(shown, -1))),
        ("本旬", _ten_days_query(current)),
    ]
    if period.ten_days is not None and period.ten_days < current:
        links.append(("下一旬", _ten_days_query(_shift(shown, 1))))
    links += [("本月", f"{month:%Y-%m}"), ("上月", f"{last_month:%Y-%m}")]
    return [(label, urlencode({"period": value})) for label, value in links]


# -- charts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the figure written beside the bar
    y: float
    width: float


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one a row: a label, the bar, its figure."""

    bars: tuple[Bar, ...]
    height: float
    width: float = _LABEL + _PLOT + _VALUE
    row: float = _ROW
    label_width: float = _LABEL


def bar_chart(rows: Sequence[tuple[str, float | None, str]], scale: float) -> BarChart:
    """rows: (label, value or None for no bar, text); a value of `scale` fills the plot."""
    bars = tuple(
        Bar(label, text, n * _ROW, _PLOT * (value or 0) / scale if scale else 0)
        for n, (label, value, text) in enumerate(rows)
    )
    return BarChart(bars, max(1, len(bars)) * _ROW)


@dataclass(frozen=True)
class Segment:
    channel: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class Column:
    day: date
    total: int
    x: float
    label: str  # the day of the month under the column, or ""
    segments: tuple[Segment, ...]  # stacked, one a channel with letters that day


@dataclass(frozen=True)
class DayChart:
    columns: tuple[Column, ...]
    width: float
    column_width: float
    plot_height: float
    height: float
    peak: int


def day_chart(volume: stats.Volume) -> DayChart:
    days = volume.by_day
    # A 旬's ten columns as wide as the other charts; a year's 366 at least 4 units each.
    step = max(4.0, min(60.0, (_LABEL + _PLOT + _VALUE) / max(1, len(days))))
    peak = max((d.total for d in days), default=0)
    columns = []
    for n, d in enumerate(days):
        top, segments = float(_DAY_PLOT_HEIGHT), []
        for c in d.by_channel:
            if c.count:
                height = _DAY_PLOT_HEIGHT * c.count / peak
                top -= height
                segments.append(Segment(c.key, top, height, c.count))
        label = str(d.day.day) if len(days) <= 31 or d.day.day == 1 else ""
        columns.append(Column(d.day, d.total, n * step, label, tuple(segments)))
    width = max(step * len(days), 1.0)
    return DayChart(
        tuple(columns), width, step, _DAY_PLOT_HEIGHT, _DAY_PLOT_HEIGHT + _DAY_AXIS, peak
    )


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _channel_chart(volume: stats.Volume) -> BarChart:
    busiest = max((c.count for c in volume.by_channel), default=0)
    return bar_chart(
        [
            (CHANNEL_LABELS.get(c.key, c.key), c.count, f"{c.count}（{_share(c, volume.total)}）")
            for c in volume.by_channel
        ],
        busiest,
    )


def _on_time_chart(bulletin: Bulletin) -> BarChart:
    rows = [
        (d.name, d.on_time_rate, f"{_percent(d.on_time_rate)}（{d.replied_on_time}/{d.replied}）")
        for d in bulletin.departments
    ]
    return bar_chart(rows, 1.0)


def _share(count: Count, total: int) -> str:
    return _percent(count.count / total if total else None)


# -- 人工服务 -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeatRow:
    seat: str
    today: SeatFigures | None
    period: SeatFigures | None


@dataclass(frozen=True)
class QueuePanel:
    """Today's figures of the seats' queue beside the period's, and each seat's calls."""

    today: QueueFigures
    period: QueueFigures
    rows: tuple[tuple[str, str, str], ...]  # (label, today, period), reports.QUEUE_LABELS
    seats: tuple[SeatRow, ...]


def seats_panel(desk: Desk, period: QueueFigures) -> QueuePanel:
    zone = desk.tools.config.zone
    day = desk.now.astimezone(zone).date()
    start = datetime.combine(day, time(), zone)
    today = queue_figures(desk.db, start, start + timedelta(days=1))
    rows = tuple(
        # The bulletin's labels; the cells here carry their own % sign.
        (label.removesuffix("(%)"), _queue_text(today, key), _queue_text(period, key))
        for key, label in reports.QUEUE_LABELS
    )
    today_seats = {s.seat: s for s in today.seats}
    period_seats = {s.seat: s for s in period.seats}
    seats = tuple(
        SeatRow(seat, today_seats.get(seat), period_seats.get(seat))
        for seat in sorted(today_seats.keys() | period_seats.keys())
    )
    return QueuePanel(today, period, rows, seats)


def _queue_text(figures: QueueFigures, key: str) -> str:
    value = getattr(figures, key)
    if key.endswith("_rate"):
        return _percent(value)
    if key.endswith("_seconds"):
        return "—" if value is None else f"{value:.1f}"
    return str(value)


def _minutes(seat: SeatFigures | None) -> str:
    return "—" if seat is None else f"{seat.talk_seconds / 60:.1f}"


# -- pages --------------------------------------------------------------------------------


TOPICS_OPEN_SECONDS, TOPICS_CLOSED_SECONDS = 300.0, 3600.0


def _bulletin(desk: Desk, period: Period) -> Bulletin:
    """stats.build_bulletin, with its independent parts side by side (each in a read
    session of its own: a session is not shared between threads) and the hot words from
    the memo. Each part is a few grouped scans of the period, so the wait is the longest
    part rather than their sum.
    """
    start, end, zone = period.start, period.end, desk.tools.config.zone
    reads = desk.tools.reads

    def apart(part: Callable[[Session], _T]) -> Callable[[], _T]:
        def run() -> _T:
            with reads() as session:
                return part(session)

        return run

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dashboard") as pool:
        handling = pool.submit(apart(lambda s: stats.department_figures(s, start, end)))
        # A past period's words hardly change (a late rejection at most); the current
        # period's are a few minutes behind at worst.
        fresh = TOPICS_CLOSED_SECONDS if end <= desk.now else TOPICS_OPEN_SECONDS
        topics = pool.submit(
            desk.tools.memo.get,
            ("hot_topics", start, end),
            fresh,
            apart(lambda s: stats.hot_topics(s, start, end)),
        )
        volume = apart(lambda s: stats.volume(s, start, end, zone))()
        queue = apart(lambda s: queue_figures(s, start, end))()
        departments = handling.result()
        return Bulletin(
            title=f"{period.name} 12345市民热线通报",
            start=start,
            end=end,
            zone=zone,
            volume=volume,
            departments=departments,
            hot_topics=topics.result(),
            assessment=stats.assess(departments, stats.DEFAULT_WEIGHTS),
            weights=stats.DEFAULT_WEIGHTS,
            queue=queue,
        )


def calendar_warning(desk: Desk) -> str | None:
    """From November 1 (the State Council publishes next year's holidays in the autumn),
    a warning while next year's schedule is neither in chinese-calendar nor loaded."""
    today = desk.now.astimezone(desk.tools.config.zone).date()
    coming = today.year + 1
    if today.month < 11 or desk.tools.workflow.calendar.knows(coming):
        return None
    return (
        f"尚未载入{coming}年节假日安排：跨入{coming}年的办理期限只按周末和法定节日估算，"
        "不含调休上班日。国务院办公厅通知发布后，请用命令 hotline calendar import 文件 载入。"
    )


def dashboard(desk: Desk) -> Response:
    warning = calendar_warning(desk)
    try:
        period = period_of(desk)
    except BadPeriod as exc:
        return desk.render(
            "dashboard.html",
            400,
            problem=str(exc),
            typed={k: desk.query(k) for k in ("period", "from", "to")},
            choices=[],
            calendar_warning=warning,
        )
    bulletin = _bulletin(desk, period)
    return desk.render(
        "dashboard.html",
        queue=seats_panel(desk, bulletin.queue),
        lanes=lane_states(jobs.backlog(desk.db), desk.now),
        lane_labels=LANE_LABELS,
        period=period,
        typed={"period": period.query, "from": "", "to": ""},
        choices=_choices(desk, period),
        bulletin=bulletin,
        export=urlencode({"period": period.query}),
        pct=_percent,
        share=_share,
        minutes=_minutes,
        service_seconds=f"{SERVICE_SECONDS:g}",
        channel_chart=_channel_chart(bulletin.volume),
        day_chart=day_chart(bulletin.volume),
        on_time_chart=_on_time_chart(bulletin),
        calendar_warning=warning,
    )


def _export(
    suffix: str, media_type: str, write: Callable[[Bulletin, Path], None]
) -> Callable[[Desk], Response]:
    def handler(desk: Desk) -> Response:
        try:
            period = period_of(desk)
        except BadPeriod as exc:
            return Response(str(exc), 400, headers=HEADERS, media_type="text/plain")
        bulletin = _bulletin(desk, period)
        with tempfile.TemporaryDirectory(prefix="hotline-bulletin-") as tmp:
            path = Path(tmp) / f"bulletin.{suffix}"
            write(bulletin, path)
            body = path.read_bytes()
        desk.audit("console.bulletin_exported", format=suffix, period=period.query)
        ascii_name = f"bulletin-{period.start.astimezone(desk.tools.config.zone):%Y%m%d}.{suffix}"
        name = f"12345热线通报-{period.name}.{suffix}"
        return Response(
            body,
            media_type=media_type,
            headers={
                **HEADERS,
                # RFC 6266 / RFC 5987: an ASCII fallback, then the Chinese name in UTF-8.
                "Content-Disposition": (
                    f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
                ),
            },
        )

    return handler


def _write_json(bulletin: Bulletin, path: Path) -> None:
    text = json.dumps(reports.bulletin_json(bulletin), ensure_ascii=False, indent=2)
    path.write_text(text + "\n", encoding="utf-8")


PAGES = (
    ("/dashboard", ["GET"], "dashboard", dashboard),
    (
        "/dashboard/export.csv",
        ["GET"],
        "dashboard",
        _export("csv", "text/csv; charset=utf-8", reports.write_csv),
    ),
    (
        "/dashboard/export.xlsx",
        ["GET"],
        "dashboard",
        _export(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            reports.write_xlsx,
        ),
    ),
    (
        "/dashboard/export.json",
        ["GET"],
        "dashboard",
        _export("json", "application/json", _write_json),
    ),
)
