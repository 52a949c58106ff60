"""人工服务 on the statistics dashboard, on SQLite and PostgreSQL: callers put through
CallQueue.handle, then today's figures beside the period's and each seat's calls."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import Engine

from tests.console.conftest import Desk
from tests.support.queued_calls import play

TODAY = date(2026, 11, 23)  # the desk's clock: 10:00 local that day, in 2026-11-下旬
FIGURE_ROW = re.compile(
    r'<tr><td>([^<]+)</td><td class="num">([^<]+)</td><td class="num">([^<]+)</td></tr>'
)
SEAT_ROW = re.compile(r'<tr data-seat="(\w+)">((?:<td[^>]*>[^<]*</td>)+)</tr>')


def queue_panel(html: str) -> str:
    return html[html.index("<h2>人工服务</h2>") : html.index("<h2>后台处理队列</h2>")]


async def test_the_dashboard_shows_today_s_queue_beside_the_period_s(
    desk: Desk, engine: Engine
) -> None:
    play(engine, TODAY)  # and one caller the evening before: the period's, not today's
    leader = await desk.signed_in("ling")

    page = await leader.get("/console/dashboard")

    assert page.status_code == 200, page.text
    panel = queue_panel(page.text)
    assert FIGURE_ROW.findall(panel) == [
        ("排队来电", "7", "8"),
        ("接通", "3", "3"),
        ("15秒内接通", "2", "2"),
        ("放弃", "1", "2"),
        ("超时转留言或回电", "2", "2"),
        ("中断", "1", "1"),
        ("接通率", "42.9%", "37.5%"),
        ("15秒接通率", "28.6%", "25.0%"),
        ("放弃率", "14.3%", "25.0%"),
        ("平均等待(秒)", "30.0", "30.0"),
        ("最长等待(秒)", "134.0", "134.0"),
    ]
    seats = {seat: re.findall(r">([^<]*)</td>", cells) for seat, cells in SEAT_ROW.findall(panel)}
    assert seats == {
        "8001": ["8001", "2", "3.1", "2", "3.1"],
        "8002": ["8002", "1", "0.0", "1", "0.0"],  # its call goes on: no talk time yet
    }
    assert "style=" not in panel and "<script" not in panel  # the CSP: no inline styles


async def test_a_day_without_queued_callers_says_so(desk: Desk) -> None:
    leader = await desk.signed_in("ling")

    page = await leader.get("/console/dashboard")

    panel = queue_panel(page.text)
    assert '<p class="muted" id="queue-empty">今日和本期都没有排队等候人工服务的来电。</p>' in panel
    assert "<table" not in panel
