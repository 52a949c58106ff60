"""A bulletin (通报) as Chinese text, CSV, an Excel workbook and stable JSON."""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from gateway.contract import labels
from gateway.contract.labels import CHANNEL_LABELS, STATUS_LABELS
from gateway.core.queue_figures import SERVICE_SECONDS, QueueFigures
from gateway.core.stats import Bulletin, Count, DepartmentFigures
from gateway.core.views import iso_utc

CATEGORY_LABELS = {**labels.CATEGORY_LABELS, "unclassified": labels.UNCLASSIFIED_LABEL}
# Sections; also the CSV headings and the sheet names (Excel allows 31 characters).
CHANNELS, DAYS, CATEGORIES, STATUSES = "来信总量与渠道", "每日来信", "类别", "办理状态"
DEPARTMENT_LETTERS, HANDLING = "各单位来信", "各单位办理情况"
WORDS, DISTRICTS, RANKING = "热点词语", "热点区域", "综合考评排名"
HANDLING_HEADERS = (
    "单位",
    "交办",
    "答复",
    "按时答复",
    "超期未办",
    "答复率(%)",
    "按时率(%)",
    "平均用时(小时)",
    "退件",
    "催办",
    "督办",
    "强制办理",
    "申请延期",
    "批准延期",
    "回访",
    "满意",
    "基本满意",
    "不满意",
    "未答复",
    "满意率(%)",
)
# 人工服务: the seats' call queue; the console dashboard shows the same labels.
QUEUE, SEAT_CALLS = "人工服务", "坐席接听"
QUEUE_LABELS = (
    ("finished", "排队来电"),
    ("answered", "接通"),
    ("answered_within", f"{SERVICE_SECONDS:g}秒内接通"),
    ("abandoned", "放弃"),
    ("timed_out", "超时转留言或回电"),
    ("lost", "中断"),
    ("answer_rate", "接通率(%)"),
    ("answered_within_rate", f"{SERVICE_SECONDS:g}秒接通率(%)"),
    ("abandon_rate", "放弃率(%)"),
    ("average_wait_seconds", "平均等待(秒)"),
    ("longest_wait_seconds", "最长等待(秒)"),
)
SEAT_HEADERS = ("坐席", "接听数", "通话时长(分钟)")
# The text bulletin prints the wide handling table as two: handling, then chasing.
_HANDLING_SPLIT = 8

_Cell = str | int | Decimal | date | None


@dataclass(frozen=True)
class _Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[_Cell, ...], ...]


def _tables(bulletin: Bulletin) -> tuple[_Table, ...]:
    """The bulletin's tables, in order, as rendered by every format but JSON: 人工服务 only
    for a period with callers in the seats' queue (a hotline without seats, or a period
    before them, would print a table of dashes)."""
    v, names = bulletin.volume, {d.code: d.name for d in bulletin.departments}
    queue = _queue_tables(bulletin.queue) if bulletin.queue.finished else ()
    return (
        _Table(
            CHANNELS,
            ("渠道", "件数", "占比(%)"),
            (
                *_shares(v.by_channel, v.total, CHANNEL_LABELS),
                ("合计", v.total, _percent(1.0 if v.total else None)),
            ),
        ),
        _Table(
            DAYS,
            ("日期", *(CHANNEL_LABELS.get(c.key, c.key) for c in v.by_channel), "合计"),
            tuple((d.day, *(c.count for c in d.by_channel), d.total) for d in v.by_day),
        ),
        _Table(
            CATEGORIES,
            ("类别", "件数", "占比(%)"),
            _shares(v.by_category, v.total, CATEGORY_LABELS),
        ),
        _Table(
            STATUSES,
            ("状态", "件数"),
            tuple((STATUS_LABELS.get(c.key, c.key), c.count) for c in v.by_status),
        ),
        _Table(
            DEPARTMENT_LETTERS,
            ("单位", "件数"),
            tuple((names.get(c.key, c.key), c.count) for c in v.by_department),
        ),
        _Table(HANDLING, HANDLING_HEADERS, tuple(_handling_row(d) for d in bulletin.departments)),
        _Table(WORDS, ("排名", "词语", "次数"), _ranks(bulletin.hot_topics.words)),
        _Table(DISTRICTS, ("排名", "区域", "件数"), _ranks(bulletin.hot_topics.districts)),
        _Table(
            RANKING,
            ("名次", "单位", "得分", "工作量", "答复率", "按时率", "满意率", "办理过程", "扣分"),
            tuple(
                (
                    a.rank,
                    a.name,
                    _decimal(a.score, 2),
                    _decimal(a.workload, 2),
                    _decimal(a.reply_rate, 2),
                    _decimal(a.timeliness, 2),
                    _decimal(a.satisfaction, 2),
                    _decimal(a.process, 2),
                    _decimal(a.penalties, 2),
                )
                for a in bulletin.assessment
            ),
        ),
        *queue,
    )


def _queue_tables(q: QueueFigures) -> tuple[_Table, _Table]:
    return (
        _Table(
            QUEUE,
            ("项目", "数值"),
            tuple((label, _queue_cell(q, key)) for key, label in QUEUE_LABELS),
        ),
        _Table(
            SEAT_CALLS,
            SEAT_HEADERS,
            tuple((s.seat, s.handled, _decimal(s.talk_seconds / 60, 1)) for s in q.seats),
        ),
    )


def _queue_cell(q: QueueFigures, key: str) -> _Cell:
    value = getattr(q, key)
    if key.endswith("_rate"):
        return _percent(value)
    if key.endswith("_seconds"):
        return _decimal(value, 1)
    assert isinstance(value, int)
    return value


def _shares(
    counts: Sequence[Count], total: int, labels: dict[str, str]
) -> tuple[tuple[_Cell, ...], ...]:
    return tuple(
        (labels.get(c.key, c.key), c.count, _percent(c.count / total if total else None))
        for c in counts
    )


def _handling_row(d: DepartmentFigures) -> tuple[_Cell, ...]:
    return (
        d.name,
        d.assigned,
        d.replied,
        d.replied_on_time,
        d.overdue_open,
        _percent(d.reply_rate),
        _percent(d.on_time_rate),
        _decimal(d.handling_hours, 1),
        d.returns,
        d.urges,
        d.supervisions,
        d.forced,
        d.extensions_requested,
        d.extensions_approved,
        d.visited,
        d.satisfied,
        d.mostly_satisfied,
        d.unsatisfied,
        d.unanswered,
        _percent(d.satisfaction_rate),
    )


def _ranks(counts: Sequence[Count]) -> tuple[tuple[_Cell, ...], ...]:
    return tuple((n, c.key, c.count) for n, c in enumerate(counts, start=1))


def _decimal(value: float | None, places: int) -> Decimal | None:
    """Rounded half up (四舍五入) from the float's shortest repr, as readers expect."""
    if value is None:
        return None
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _percent(rate: float | None) -> Decimal | None:
    return None if rate is None else _decimal(rate * 100, 1)


# -- text ---------------------------------------------------------------------------------


def render_text(bulletin: Bulletin) -> str:
    """The bulletin as plain Chinese text, columns aligned for a fixed-width CJK font."""
    t = {table.title: table for table in _tables(bulletin)}
    hot, w = bulletin.hot_topics, bulletin.weights
    handling = t[HANDLING]
    chasing = (0, *range(_HANDLING_SPLIT, len(HANDLING_HEADERS)))
    lines = [
        bulletin.title,
        f"统计时段：{_period_text(bulletin)}",
        "",
        f"一、{CHANNELS}",
        f"本期共收到来信 {bulletin.volume.total} 件。",
        *_aligned(t[CHANNELS]),
        "",
        f"{DAYS}：",
        *_aligned(t[DAYS]),
        "",
        f"二、{CATEGORIES}",
        *_aligned(t[CATEGORIES]),
        "",
        f"三、{HANDLING}",
        *_aligned(handling, range(_HANDLING_SPLIT)),
        "",
        *_aligned(handling, chasing),
        "注：交办为本期交办的件（退件除外）；答复、按时答复截至期末；超期未办含以前各期交办、"
        "截至期末未答复且已过办理期限的件。答复率＝答复÷交办，按时率＝按时答复÷答复，"
        "满意率＝（满意＋基本满意）÷回访（已答复的）；未答复为回访逾期未答、转人工回访的件。",
        "",
        "四、热点问题",
        *_aligned(t[WORDS]),
        f"注：热点词语取自本期最近 {hot.sampled} 件来信（不含不予受理件，最多抽取 "
        f"{hot.sample_limit} 件）。",
        "",
        *_aligned(t[DISTRICTS]),
        "",
        f"五、{RANKING}",
        *_aligned(t[RANKING]),
        f"注：工作量 {w.workload:g} 分、答复率 {w.reply_rate:g} 分、按时率 {w.timeliness:g} 分、"
        f"满意率 {w.satisfaction:g} 分、办理过程 {w.process:g} 分；办理过程每次催办扣 "
        f"{w.per_urge:g} 分、督办扣 {w.per_supervision:g} 分、强制办理扣 {w.per_forced:g} 分、"
        f"退件扣 {w.per_return:g} 分。无答复或无回访的单位，该项不计，其余各项按比例折算。",
    ]
    if QUEUE in t:
        lines += [
            "",
            f"六、{QUEUE}",
            *_aligned(t[QUEUE]),
            "",
            *_aligned(t[SEAT_CALLS]),
            "注：排队来电为本期进入人工排队、已离开队列的来电（仍在等候的不计）。接通率＝接通÷排队来电，"
            f"{SERVICE_SECONDS:g}秒接通率＝等候不超过{SERVICE_SECONDS:g}秒即接通÷排队来电，"
            "放弃率＝等候中挂机÷排队来电；平均等待为接通来电的等候时间，最长等待含未接通的来电；"
            "中断为所在线路进程故障而断开的来电；通话时长为已结束的通话。",
        ]
    return "\n".join(lines) + "\n"


def _period_text(bulletin: Bulletin) -> str:
    start, end = bulletin.start.astimezone(bulletin.zone), bulletin.end.astimezone(bulletin.zone)
    if start.time() == time() == end.time():
        last = end.date() - timedelta(days=1)
        return f"{_chinese_date(start.date())}至{_chinese_date(last)}（{bulletin.zone.key}）"
    return f"{start:%Y-%m-%d %H:%M} 至 {end:%Y-%m-%d %H:%M}（不含，{bulletin.zone.key}）"


def _chinese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _aligned(table: _Table, columns: Sequence[int] | None = None) -> list[str]:
    picked = list(columns if columns is not None else range(len(table.headers)))
    cells = [[_text_cell(row[i]) for i in picked] for row in table.rows]
    # Numbers are right-aligned, text and dates left-aligned, headers as their column.
    right = [any(isinstance(row[i], int | Decimal) for row in table.rows) for i in picked]
    rows = [[table.headers[i] for i in picked], *cells]
    widths = [max(_width(row[n]) for row in rows) for n in range(len(picked))]
    return [
        "  ".join(_pad(cell, widths[n], right[n]) for n, cell in enumerate(row)).rstrip()
        for row in rows
    ]


def _text_cell(value: _Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _width(text: str) -> int:
    """Columns on a terminal: wide and full-width characters (汉字, ，) take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


# -- files --------------------------------------------------------------------------------


def write_csv(bulletin: Bulletin, path: str | Path) -> None:
    """The title, then each table: a heading row, a header row, its rows, a blank row.
    UTF-8 with a BOM, without which Excel reads Chinese as the locale's ANSI code page."""
    with Path(path).open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([bulletin.title])
        for table in _tables(bulletin):
            writer.writerow([])
            writer.writerow([table.title])
            writer.writerow(table.headers)
            writer.writerows([_csv_cell(v) for v in row] for row in table.rows)


def _csv_cell(value: _Cell) -> str | int:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return value if isinstance(value, int) else str(value)


def write_xlsx(bulletin: Bulletin, path: str | Path) -> None:
    """One sheet per table, named by its section, the header row bold and frozen."""
    book = Workbook()
    book.remove(book.active)
    book.properties.title = bulletin.title
    for table in _tables(bulletin):
        sheet = book.create_sheet(table.title)
        sheet.append(list(table.headers))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            sheet.append(list(row))
        sheet.freeze_panes = "A2"
        for n, header in enumerate(table.headers):
            longest = max([_width(header), *(_width(_text_cell(r[n])) for r in table.rows)])
            sheet.column_dimensions[get_column_letter(n + 1)].width = longest + 2
    book.save(Path(path))


# -- JSON ---------------------------------------------------------------------------------


def bulletin_json(bulletin: Bulletin) -> dict[str, Any]:
    """The bulletin as plain data, for the API and `--json`. Keys:

    title; period {start, end (UTC ISO 8601, end excluded), zone};
    volume {total, by_channel, by_category, by_status, by_department (code -> letters),
    by_day [{date, total, by_channel}]} with counts keyed by the stored names
    ("unclassified" for no category); departments [{code, name, assigned, replied,
    replied_on_time, overdue_open, reply_rate, on_time_rate, handling_hours, returns,
    urges, supervisions, forced, extensions_requested, extensions_approved, visited,
    satisfied, mostly_satisfied, unsatisfied, unanswered, satisfaction_rate}] with rates
    as fractions (4 decimals) or null;
    hot_topics {words [{word, count}], districts [{district, count}], sampled,
    sample_limit}; assessment {weights {workload, reply_rate, timeliness, satisfaction,
    process, per_urge, per_supervision, per_forced, per_return}, ranking [{rank, code,
    name, score, workload, reply_rate, timeliness, satisfaction, process, penalties}]}
    with points to 2 decimals, null for a part not rated;
    queue {service_seconds, finished, answered, answered_within, abandoned, timed_out, lost,
    answer_rate, answered_within_rate, abandon_rate (fractions, 4 decimals, or null),
    average_wait_seconds, longest_wait_seconds (1 decimal, or null), seats [{seat, handled,
    talk_seconds}]}: the seats' call queue, always present (all 0 in a period without it).
    """
    v, hot, w = bulletin.volume, bulletin.hot_topics, bulletin.weights
    return {
        "title": bulletin.title,
        "period": {
            "start": iso_utc(bulletin.start),
            "end": iso_utc(bulletin.end),
            "zone": bulletin.zone.key,
        },
        "volume": {
            "total": v.total,
            "by_channel": _keyed(v.by_channel),
            "by_category": _keyed(v.by_category),
            "by_status": _keyed(v.by_status),
            "by_department": _keyed(v.by_department),
            "by_day": [
                {"date": d.day.isoformat(), "total": d.total, "by_channel": _keyed(d.by_channel)}
                for d in v.by_day
            ],
        },
        "departments": [_department_json(d) for d in bulletin.departments],
        "hot_topics": {
            "words": [{"word": c.key, "count": c.count} for c in hot.words],
            "districts": [{"district": c.key, "count": c.count} for c in hot.districts],
            "sampled": hot.sampled,
            "sample_limit": hot.sample_limit,
        },
        "assessment": {
            "weights": {
                "workload": w.workload,
                "reply_rate": w.reply_rate,
                "timeliness": w.timeliness,
                "satisfaction": w.satisfaction,
                "process": w.process,
                "per_urge": w.per_urge,
                "per_supervision": w.per_supervision,
                "per_forced": w.per_forced,
                "per_return": w.per_return,
            },
            "ranking": [
                {
                    "rank": a.rank,
                    "code": a.code,
                    "name": a.name,
                    "score": a.score,
                    "workload": _round(a.workload, 2),
                    "reply_rate": _round(a.reply_rate, 2),
                    "timeliness": _round(a.timeliness, 2),
                    "satisfaction": _round(a.satisfaction, 2),
                    "process": _round(a.process, 2),
                    "penalties": _round(a.penalties, 2),
                }
                for a in bulletin.assessment
            ],
        },
        "queue": _queue_json(bulletin.queue),
    }


def _queue_json(q: QueueFigures) -> dict[str, Any]:
    return {
        "service_seconds": SERVICE_SECONDS,
        "finished": q.finished,
        "answered": q.answered,
        "answered_within": q.answered_within,
        "abandoned": q.abandoned,
        "timed_out": q.timed_out,
        "lost": q.lost,
        "answer_rate": _round(q.answer_rate, 4),
        "answered_within_rate": _round(q.answered_within_rate, 4),
        "abandon_rate": _round(q.abandon_rate, 4),
        "average_wait_seconds": _round(q.average_wait_seconds, 1),
        "longest_wait_seconds": _round(q.longest_wait_seconds, 1),
        "seats": [
            {"seat": s.seat, "handled": s.handled, "talk_seconds": _round(s.talk_seconds, 1)}
            for s in q.seats
        ],
    }


def _department_json(d: DepartmentFigures) -> dict[str, Any]:
    return {
        "code": d.code,
        "name": d.name,
        "assigned": d.assigned,
        "replied": d.replied,
        "replied_on_time": d.replied_on_time,
        "overdue_open": d.overdue_open,
        "reply_rate": _round(d.reply_rate, 4),
        "on_time_rate": _round(d.on_time_rate, 4),
        "handling_hours": _round(d.handling_hours, 2),
        "returns": d.returns,
        "urges": d.urges,
        "supervisions": d.supervisions,
        "forced": d.forced,
        "extensions_requested": d.extensions_requested,
        "extensions_approved": d.extensions_approved,
        "visited": d.visited,
        "satisfied": d.satisfied,
        "mostly_satisfied": d.mostly_satisfied,
        "unsatisfied": d.unsatisfied,
        "unanswered": d.unanswered,
        "satisfaction_rate": _round(d.satisfaction_rate, 4),
    }


def _keyed(counts: Sequence[Count]) -> dict[str, int]:
    return {c.key: c.count for c in counts}


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)
