"""The statistics dashboard: figures that match the letters stored, SVG charts within the
CSP, the bulletin's downloads, and no citizen's details in any of them."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta
from urllib.parse import unquote

import openpyxl
import pytest

from gateway.contract.contact import Channel, Citizen
from gateway.contract.kinds import DELIVER, OCR, ROUTE
from gateway.contract.redaction import ID_NUMBER, MOBILE
from gateway.core.deadlines import YearSchedule
from store.db import make_sessionmaker
from store.jobs import enqueue
from tests.conftest import SHANGHAI
from tests.console.conftest import Desk

LANE_ROW = re.compile(
    r'<tr data-lane="(\w+)"><td>[^<]*</td>'
    r'<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">(\d+)</td>'
    r'<td class="num">([^<]*)</td>'
)
CHANNEL_ROW = re.compile(r'<tr data-channel="(\w+)"><td>[^<]*</td><td class="num">(\d+)</td>')
# What the citizen of the PII letter gave; none of it may reach a figure or a download.
ID, PHONE, NAME = "11010519491231002X", "13912345678", "欧阳明"


def channel_counts(html: str) -> dict[str, int]:
    return {channel: int(n) for channel, n in CHANNEL_ROW.findall(html) if int(n)}


async def stored(desk: Desk) -> None:
    """Two SMS and one e-mail in the ten-day period of the fixture's Monday (2026-11-下旬),
    each about another matter (no duplicates), all routed to city-admin; one carries its
    citizen's ID number and phone in its words."""
    desk.letter(1)
    desk.letter(
        2,
        text=f"我叫{NAME}，身份证{ID}，电话{PHONE}。人民路的路灯不亮，井盖也丢了。",
        citizen=Citizen(name=NAME, phone=PHONE, id_number=ID),
    )
    desk.letter(
        3,
        channel=Channel.EMAIL,
        source="mail",
        external_id="<3@example.cn>",
        subject="井盖丢失",
        text="南溪区长江大道的井盖丢失一周了，夜里有行人掉进去的危险。",
    )


async def test_the_dashboard_counts_the_period_s_letters_by_channel(desk: Desk) -> None:
    await stored(desk)
    leader = await desk.signed_in("ling")

    page = await leader.get("/console/dashboard")

    assert page.status_code == 200, page.text
    assert "2026年11月下旬" in page.text
    assert channel_counts(page.text) == {"sms": 2, "email": 1}
    assert re.search(r'<strong id="total">3</strong>', page.text)
    # Every letter went to city-admin: the handling table and the bars say so.
    assert re.search(
        r'<tr data-department="city-admin"><td>[^<]+</td><td class="num">3<', page.text
    )
    assert page.text.count('<rect class="ch-sms"') == 1  # one day, one stacked segment
    # The CSP forbids inline styles and scripts: the charts are plain SVG attributes.
    assert "style=" not in page.text and "<script" not in page.text
    for leak in (ID, PHONE, NAME):
        assert leak not in page.text


async def test_another_period_or_range_is_counted_on_its_own(desk: Desk) -> None:
    await stored(desk)
    leader = await desk.signed_in("zhang")

    earlier = await leader.get("/console/dashboard?period=2026-11-中旬")
    ranged = await leader.get("/console/dashboard?from=2026-11-26&to=2026-11-26")

    assert earlier.status_code == ranged.status_code == 200
    assert "2026年11月中旬" in earlier.text and channel_counts(earlier.text) == {}
    assert "2026-11-26至2026-11-26" in ranged.text
    assert channel_counts(ranged.text) == {"sms": 2, "email": 1}


BAD_PERIODS = [
    ("period=yesterday", "无法识别统计时段"),
    ("period=2025-01-01..2026-11-30", "不能超过"),
    ("from=2026-11-01", "请填写起止日期"),
]


async def test_a_bad_period_is_a_400_with_the_reason(desk: Desk) -> None:
    leader = await desk.signed_in("ling")

    for query, says in BAD_PERIODS:
        page = await leader.get(f"/console/dashboard?{query}")
        assert page.status_code == 400, query
        assert says in page.text, query
        export = await leader.get(f"/console/dashboard/export.csv?{query}")
        assert export.status_code == 400, query


async def test_the_bulletin_downloads_as_csv_excel_and_json_without_pii(desk: Desk) -> None:
    await stored(desk)
    admin = await desk.signed_in("root")
    query = "?period=2026-11-下旬"

    as_csv = await admin.get("/console/dashboard/export.csv" + query)
    as_xlsx = await admin.get("/console/dashboard/export.xlsx" + query)
    as_json = await admin.get("/console/dashboard/export.json" + query)

    for answer, suffix in ((as_csv, "csv"), (as_xlsx, "xlsx"), (as_json, "json")):
        assert answer.status_code == 200, answer.text
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="bulletin-20261121.{suffix}"')
        assert unquote(disposition.split("filename*=UTF-8''")[1]) == (
            f"12345热线通报-2026年11月下旬.{suffix}"
        )
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0] == ["2026年11月下旬 12345市民热线通报"]
    section = rows.index(["来信总量与渠道"])
    shares = {row[0]: int(row[1]) for row in rows[section + 2 : section + 9]}
    assert shares["短信"] == 2 and shares["电子邮件"] == 1 and shares["合计"] == 3
    book = openpyxl.load_workbook(io.BytesIO(as_xlsx.content), read_only=True)
    sheet = {row[0]: row[1] for row in book["来信总量与渠道"].iter_rows(values_only=True)}
    assert sheet["短信"] == 2 and sheet["合计"] == 3
    data = as_json.json()
    assert data["volume"]["total"] == 3
    assert data["volume"]["by_channel"] == {
        "phone": 0,
        "sms": 2,
        "email": 1,
        "fax": 0,
        "web": 0,
        "webcall": 0,
    }
    assert "路灯" in {w["word"] for w in data["hot_topics"]["words"]}
    words = json.dumps(data["hot_topics"], ensure_ascii=False)
    cells = "\n".join(
        str(cell)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for cell in row
    )
    for text in (as_csv.content.decode("utf-8-sig"), cells, as_json.text, words):
        assert not ID_NUMBER.search(text) and not MOBILE.search(text)
        for leak in (ID, ID[:-1], PHONE, NAME):
            assert leak not in text


async def test_a_department_clerk_has_no_dashboard(desk: Desk) -> None:
    clerk = await desk.signed_in("li")

    for url in ("/console/dashboard", "/console/dashboard/export.json"):
        answer = await clerk.get(url)
        assert answer.status_code == 403, url
        assert "您的角色无权访问此页面" in answer.text


async def test_the_dashboard_shows_each_lanes_queue_as_it_is_now(desk: Desk) -> None:
    now = desk.clock()
    with make_sessionmaker(desk.engine).begin() as session:
        for kind, status, waited in [
            (ROUTE, "queued", 90),
            (ROUTE, "queued", 5),
            (OCR, "running", 300),
            (DELIVER, "failed", 3600),
        ]:
            enqueue(session, kind, at=now - timedelta(seconds=waited)).status = status
    leader = await desk.signed_in("ling")

    page = await leader.get("/console/dashboard")

    rows = {lane: tuple(rest) for lane, *rest in LANE_ROW.findall(page.text)}
    assert rows["route"] == ("2", "0", "0", "90 秒")
    assert rows["ocr"] == ("0", "1", "0", "—")  # claimed: nobody waits
    assert rows["notify"] == ("0", "0", "1", "—")
    assert rows["webhooks"] == ("0", "0", "0", "—")
    assert "分办" in page.text and "传真文字识别" in page.text


WARNING = re.compile(r'<p class="problem" id="calendar-warning" role="alert">([^<]*)</p>')


@pytest.mark.parametrize(
    ("now", "loaded", "warned"),
    [
        pytest.param(datetime(2026, 10, 31, 23, 0, tzinfo=SHANGHAI), False, False, id="october"),
        pytest.param(datetime(2026, 11, 1, 0, 30, tzinfo=SHANGHAI), False, True, id="november"),
        pytest.param(datetime(2026, 12, 31, 9, 0, tzinfo=SHANGHAI), False, True, id="december"),
        pytest.param(datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI), True, False, id="loaded"),
    ],
)
async def test_the_dashboard_warns_from_november_while_next_year_s_holidays_are_missing(
    desk: Desk, now: datetime, loaded: bool, warned: bool
) -> None:
    desk.clock.now = now
    if loaded:
        desk.workflow.calendar.schedules[2027] = YearSchedule(
            2027, frozenset({date(2027, 1, 1)}), frozenset()
        )
    leader = await desk.signed_in("ling")

    page = await leader.get("/console/dashboard")

    assert page.status_code == 200, page.text
    shown = WARNING.findall(page.text)
    if warned:
        assert len(shown) == 1
        assert "尚未载入2027年节假日安排" in shown[0] and "hotline calendar import" in shown[0]
    else:
        assert shown == []
