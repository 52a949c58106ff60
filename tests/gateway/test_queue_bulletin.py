"""人工服务 in the ten-day bulletin (旬报), on SQLite and PostgreSQL: callers put through
CallQueue.handle, then the section in the text, the CSV, the workbook and the JSON, from
the library and from `hotline report`."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import Engine

from gateway.core import reports, stats
from gateway.core.deadlines import parse_period
from store.db import make_sessionmaker
from tests.gateway.test_cli import hotline
from tests.support.queued_calls import SHANGHAI, play

DAY = date(2026, 12, 11)  # the first day of 2026-12-中旬; its evening before is 上旬's
SECTION = [
    "六、人工服务",
    "项目               数值",
    "排队来电              7",
    "接通                  3",
    "15秒内接通            2",
    "放弃                  1",
    "超时转留言或回电      2",
    "中断                  1",
    "接通率(%)          42.9",
    "15秒接通率(%)      28.6",
    "放弃率(%)          14.3",
    "平均等待(秒)       30.0",
    "最长等待(秒)      134.0",
    "",
    "坐席  接听数  通话时长(分钟)",
    "8001       2             3.1",
    "8002       1             0.0",
]
CSV_ROWS = [
    ["人工服务"],
    ["项目", "数值"],
    ["排队来电", "7"],
    ["接通", "3"],
    ["15秒内接通", "2"],
    ["放弃", "1"],
    ["超时转留言或回电", "2"],
    ["中断", "1"],
    ["接通率(%)", "42.9"],
    ["15秒接通率(%)", "28.6"],
    ["放弃率(%)", "14.3"],
    ["平均等待(秒)", "30.0"],
    ["最长等待(秒)", "134.0"],
    [],
    ["坐席接听"],
    ["坐席", "接听数", "通话时长(分钟)"],
    ["8001", "2", "3.1"],
    ["8002", "1", "0.0"],
]


def bulletin(engine: Engine, period: str) -> stats.Bulletin:
    start, end = parse_period(period, SHANGHAI)
    with make_sessionmaker(engine)() as session:
        return stats.build_bulletin(session, f"{period} 旬报", start, end, SHANGHAI)


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_the_bulletin_ends_with_the_period_s_queue_figures(engine: Engine, tmp_path: Path) -> None:
    play(engine, DAY)
    middle = bulletin(engine, "2026-12-中旬")

    lines = reports.render_text(middle).splitlines()
    reports.write_csv(middle, tmp_path / "b.csv")
    reports.write_xlsx(middle, tmp_path / "b.xlsx")

    at = lines.index("六、人工服务")
    assert lines[at : at + len(SECTION)] == SECTION
    assert lines[at + len(SECTION)].startswith("注：排队来电为本期进入人工排队")
    rows = csv_rows(tmp_path / "b.csv")
    assert rows[rows.index(["人工服务"]) :] == CSV_ROWS
    book = load_workbook(tmp_path / "b.xlsx")
    assert book.sheetnames[-2:] == ["人工服务", "坐席接听"]
    assert [[c.value for c in row] for row in book["坐席接听"].iter_rows()] == [
        ["坐席", "接听数", "通话时长(分钟)"],
        ["8001", 2, 3.1],
        ["8002", 1, 0],
    ]
    assert [c.value for c in book["人工服务"]["B"]][1:4] == [7, 3, 2]
    assert reports.bulletin_json(middle)["queue"] == {
        "service_seconds": 15.0,
        "finished": 7,
        "answered": 3,
        "answered_within": 2,
        "abandoned": 1,
        "timed_out": 2,
        "lost": 1,
        "answer_rate": 0.4286,
        "answered_within_rate": 0.2857,
        "abandon_rate": 0.1429,
        "average_wait_seconds": 30.0,
        "longest_wait_seconds": 134.0,
        "seats": [
            {"seat": "8001", "handled": 2, "talk_seconds": 188.0},
            {"seat": "8002", "handled": 1, "talk_seconds": 0.0},
        ],
    }


def test_the_evening_before_counts_in_its_own_period(engine: Engine) -> None:
    play(engine, DAY)

    first = reports.render_text(bulletin(engine, "2026-12-上旬")).splitlines()

    at = first.index("六、人工服务")
    assert first[at + 2 : at + 5] == [
        "排队来电              1",
        "接通                  0",
        "15秒内接通            0",
    ]
    assert "放弃率(%)         100.0" in first
    assert first[first.index("坐席  接听数  通话时长(分钟)") + 1 :][0].startswith("注：")


def test_a_period_without_queued_callers_has_no_queue_section(
    engine: Engine, tmp_path: Path
) -> None:
    play(engine, DAY)
    later = bulletin(engine, "2026-12-下旬")

    reports.write_csv(later, tmp_path / "b.csv")

    assert "人工服务" not in reports.render_text(later)
    assert ["人工服务"] not in csv_rows(tmp_path / "b.csv")
    assert reports.bulletin_json(later)["queue"]["finished"] == 0


def test_hotline_report_prints_and_writes_the_queue_figures(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    play(engine, DAY)
    csv_file = tmp_path / "旬报.csv"

    done = hotline(database_url, "report", "--period", "2026-12-中旬", "--csv", str(csv_file))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    at = lines.index("六、人工服务")
    assert lines[at : at + len(SECTION)] == SECTION
    rows = csv_rows(csv_file)
    assert rows[rows.index(["人工服务"]) :] == CSV_ROWS
    as_json = hotline(database_url, "report", "--period", "2026-12-中旬", "--json")
    assert json.loads(as_json.stdout)["queue"]["answered_within"] == 2
