"""The 通报 figures: counted in the database by local day, scored, and rendered."""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from gateway.core import reports, stats
from store.db import make_sessionmaker
from store.models import Assignment, Department, Event, Letter

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(moment: str, zone: ZoneInfo = SHANGHAI) -> datetime:
    """'11-03T00:10' of 2026 on the zone's clock, as UTC."""
    naive = datetime.strptime(f"2026-{moment}", "%Y-%m-%dT%H:%M")
    return naive.replace(tzinfo=zone).astimezone(UTC)


def table(text: str) -> list[list[str]]:
    """The rows of a whitespace-aligned table; '#' starts a comment."""
    rows = (line.split("#")[0].split() for line in text.splitlines())
    return [row for row in rows if row]


def null(cell: str) -> str | None:
    return None if cell == "-" else cell


FIRST_DEKAD = (local("11-01T00:00"), local("11-11T00:00"))  # 上旬
SECOND_DEKAD = (local("11-11T00:00"), local("11-21T00:00"))  # 中旬

DEPARTMENTS = [
    ("chengguan", "市城管局", True),
    ("huanbao", "市生态环境局", True),  # nothing this period
    ("jiaotong", "市交通运输局", True),
    ("lvhua", "市园林局", False),  # merged away: no longer listed
    ("shuiwu", "市水务局", True),
]

LETTERS = table("""
#n received    channel category   status    district subject      text
 1 11-01T08:15 phone   complaint  closed    翠屏区   路灯不亮     人民路的路灯坏了三天。
 2 11-01T10:40 sms     help       closed    翠屏区   路灯不亮     南岸西路路灯不亮，请派人修理。
 3 11-01T21:05 web     inquiry    replied   南溪区   社保卡办理   请问社保卡在哪里办理？
 4 11-02T09:30 phone   complaint  closed    翠屏区   噪音扰民     工地夜间施工噪音很大。
 5 11-02T14:00 email   suggestion replied   叙州区   增设公交线路 建议增设一条公交线路到高铁站。
# 00:10 in Shanghai is 16:10 UTC the day before: letter 6 belongs to the 3rd.
 6 11-03T00:10 phone   complaint  assigned  翠屏区   路灯不亮     酒都路的路灯一直不亮。
 7 11-03T11:20 sms     help       closed    南溪区   停水         小区停水两天，何时恢复供水？
 8 11-03T16:45 fax     report     signed    叙州区   违章建筑     小区楼顶有违章建筑。
 9 11-04T08:05 phone   inquiry    replied   -        公积金提取   公积金提取需要什么材料？
10 11-04T09:50 web     complaint  closed    翠屏区   路灯不亮     人民公园旁边路灯坏了。
11 11-04T13:30 sms     -          rejected  -        代开发票     代开发票，代开发票，优惠。
12 11-05T10:00 phone   help       signed    南溪区   停水         停水三天，请尽快恢复供水。
13 11-05T15:15 sms     complaint  duplicate 翠屏区   路灯不亮     人民公园旁边路灯坏了，同上。
14 11-05T20:30 web     inquiry    triage    -        户口迁移     户口迁移怎么办理？
15 11-06T07:45 phone   complaint  closed    翠屏区   噪音扰民     广场舞噪音太大。
16 11-06T12:00 email   help       replied   叙州区   路灯不亮     金沙江大道路灯不亮，影响出行。
17 11-06T18:20 sms     opinion    closed    南溪区   公交服务     公交车司机服务态度好。
18 11-07T09:10 phone   complaint  signed    叙州区   占道经营     商贩占道经营，堵塞交通。
19 11-07T11:11 web     -          rejected  -        代开发票     专业代开发票。
20 11-07T22:40 phone   help       replied   翠屏区   路灯不亮     滨江路路灯全部不亮。
21 11-08T08:30 sms     inquiry    closed    翠屏区   医保报销     异地医保报销流程是什么？
22 11-08T10:05 fax     suggestion triage    -        增设停车位   建议在医院附近增设停车位。
23 11-08T14:50 phone   report     assigned  南溪区   非法排污     河边有工厂非法排污。
24 11-09T09:00 web     complaint  duplicate 翠屏区   噪音扰民     工地夜间施工噪音很大。
25 11-09T16:30 sms     help       received  -        停水         停水了。
26 11-09T23:59 phone   other      closed    -        表扬         感谢环卫工人。
27 11-10T08:00 email   -          rejected  -        代开发票     代开各类发票。
28 11-10T12:30 sms     inquiry    received  -        办证         身份证补办需要多久？
29 11-10T23:30 web     suggestion triage    叙州区   绿化         建议增加小区绿化。
# 2026-11-10 17:30 UTC: already the 11th in Shanghai, so 中旬.
30 11-11T01:30 phone   complaint  received  翠屏区   路灯不亮     路灯又不亮了。
# The evening before the period: its assignment is backlog.
31 10-31T23:00 phone   help       assigned  南溪区   停水         停水。
""")

ASSIGNMENTS = table("""
#letter department lead status   assigned    due         replied
# 城管局: 7 this period; 5 answered by its end, 4 of them in time; 1 more returned.
 1      chengguan  lead replied  11-01T09:00 11-06T09:00 11-02T09:00  # 24 h
 4      chengguan  lead replied  11-02T10:00 11-07T10:00 11-04T10:00  # 48 h
10      chengguan  lead replied  11-04T10:00 11-09T10:00 11-04T22:00  # 12 h
15      chengguan  lead replied  11-06T08:00 11-08T08:00 11-07T20:00  # 36 h
18      chengguan  lead replied  11-07T10:00 11-09T10:00 11-10T18:00  # 80 h, late
20      chengguan  lead replied  11-07T23:00 11-09T23:00 11-12T10:00  # after the end
 8      chengguan  lead signed   11-03T17:00 11-13T17:00 -            # not due yet
 6      chengguan  lead returned 11-03T08:00 11-08T08:00 -
# 交通运输局: 4, all in time, one as co-department of a joint letter.
 1      jiaotong   co   replied  11-01T09:00 11-06T09:00 11-01T19:00  # 10 h
 6      jiaotong   lead replied  11-03T10:00 11-08T10:00 11-04T06:00  # 20 h
16      jiaotong   lead replied  11-06T13:00 11-11T13:00 11-07T19:00  # 30 h
 5      jiaotong   lead replied  11-02T15:00 11-07T15:00 11-04T07:00  # 40 h
# 水务局: 3, one answered late, two overdue; and one overdue from October.
 7      shuiwu     lead replied  11-03T12:00 11-05T12:00 11-07T16:00  # 100 h
12      shuiwu     lead signed   11-05T11:00 11-08T11:00 -
23      shuiwu     lead assigned 11-08T15:00 11-10T15:00 -
31      shuiwu     lead assigned 10-31T23:10 11-05T23:10 -
""")

# department, kind, at (Shanghai clock), letter, detail
EVENTS: list[tuple[str | None, str, str, int, dict[str, Any]]] = [
    ("chengguan", "returned", "11-03T09:00", 6, {"reason": "属交通运输局职责"}),
    ("chengguan", "warned", "11-09T09:00", 20, {}),  # a warning costs nothing
    ("chengguan", "urged", "11-10T00:00", 20, {}),
    ("chengguan", "urged", "11-13T18:00", 8, {}),  # after the period
    ("chengguan", "visited", "11-03T10:00", 1, {"satisfied": True}),
    ("chengguan", "visited", "11-05T10:00", 4, {"satisfied": True}),
    ("chengguan", "visited", "11-06T10:00", 10, {"satisfied": True}),
    ("chengguan", "visited", "11-08T10:00", 15, {"satisfied": False}),
    ("jiaotong", "visited", "11-05T11:00", 5, {"satisfied": True}),
    ("jiaotong", "visited", "11-08T11:00", 16, {"satisfied": True}),
    ("shuiwu", "urged", "11-05T23:10", 31, {}),
    ("shuiwu", "supervised", "11-07T09:00", 31, {}),
    ("shuiwu", "urged", "11-08T11:00", 12, {}),
    ("shuiwu", "forced", "11-09T09:00", 31, {"note": "限期办结"}),
    ("shuiwu", "extension_requested", "11-06T10:00", 12, {"reason": "管网抢修"}),
    ("shuiwu", "extension_decided", "11-06T15:00", 12, {"approved": True}),
    ("shuiwu", "extension_requested", "11-09T10:00", 23, {"reason": "需现场取证"}),
    ("shuiwu", "extension_decided", "11-09T15:00", 23, {"approved": False}),
    ("shuiwu", "visited", "11-09T10:00", 7, {"satisfied": False}),
    (None, "rejected", "11-04T13:31", 11, {"reason": "advertising"}),
]


def populate(engine: Engine) -> None:
    with make_sessionmaker(engine).begin() as session:
        departments = {
            code: Department(code=code, name=name, active=active)
            for code, name, active in DEPARTMENTS
        }
        letters = {int(row[0]): make_letter(row) for row in LETTERS}
        session.add_all([*departments.values(), *letters.values()])
        session.flush()
        for n, code, lead, status, assigned, due, replied in ASSIGNMENTS:
            session.add(
                Assignment(
                    letter_id=letters[int(n)].id,
                    department_id=departments[code].id,
                    mode="assign",
                    reply_type="joint" if n == "1" else "time_limited",
                    lead=lead == "lead",
                    status=status,
                    assigned_at=local(assigned),
                    due_at=local(due),
                    replied_at=None if replied == "-" else local(replied),
                )
            )
        for concerned, kind, at, letter, detail in EVENTS:
            session.add(
                Event(
                    letter_id=letters[letter].id,
                    department_id=departments[concerned].id if concerned else None,
                    at=local(at),
                    actor="test",
                    kind=kind,
                    detail=detail,
                )
            )


def make_letter(row: list[str], zone: ZoneInfo = SHANGHAI) -> Letter:
    n, received, channel, category, status, district, subject, text = row
    return Letter(
        tracking_number=f"T{int(n):04d}",
        verification_code="000000",
        channel=channel,
        source="test",
        external_id=n,
        received_at=local(received, zone),
        status=status,
        category=null(category),
        district=null(district),
        subject=subject,
        text=text,
    )


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    populate(engine)
    with make_sessionmaker(engine)() as session:
        yield session


def figures_of(session: Session) -> dict[str, stats.DepartmentFigures]:
    return {f.code: f for f in stats.department_figures(session, *FIRST_DEKAD)}


def counts(items: tuple[stats.Count, ...]) -> dict[str, int]:
    return {c.key: c.count for c in items}


def bulletin(session: Session) -> stats.Bulletin:
    return stats.build_bulletin(
        session, "2026年11月上旬 12345市民热线通报", *FIRST_DEKAD, SHANGHAI, top=5
    )


# -- volume -------------------------------------------------------------------------------


def test_letters_are_counted_per_channel_category_status_and_department(
    session: Session,
) -> None:
    volume = stats.volume(session, *FIRST_DEKAD, SHANGHAI)

    assert volume.total == 29
    assert counts(volume.by_channel) == {
        "phone": 10,
        "sms": 8,
        "email": 3,
        "fax": 2,
        "web": 6,
        "webcall": 0,
    }
    assert counts(volume.by_category) == {
        "complaint": 8,
        "help": 6,
        "suggestion": 3,
        "inquiry": 5,
        "report": 2,
        "opinion": 1,
        "other": 1,
        "unclassified": 3,
    }
    assert {k: n for k, n in counts(volume.by_status).items() if n} == {
        "received": 2,
        "triage": 3,
        "rejected": 3,
        "duplicate": 2,
        "assigned": 2,
        "signed": 3,
        "replied": 5,
        "closed": 9,
    }
    # Through assignments, returned ones left out: letter 6 counts for 交通运输局 only.
    assert counts(volume.by_department) == {"chengguan": 7, "jiaotong": 4, "shuiwu": 3}


def test_days_are_the_local_days_of_shanghai(session: Session) -> None:
    volume = stats.volume(session, FIRST_DEKAD[0], SECOND_DEKAD[1], SHANGHAI)
    by_day = {d.day: d for d in volume.by_day}

    assert len(volume.by_day) == 20
    totals = [by_day[date(2026, 11, d)].total for d in range(1, 12)]
    assert totals == [3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 1]
    # Letter 6 came at 16:10 UTC on the 2nd, which is ten past midnight on the 3rd.
    assert counts(by_day[date(2026, 11, 3)].by_channel) == {
        "phone": 1,
        "sms": 1,
        "email": 0,
        "fax": 1,
        "web": 0,
        "webcall": 0,
    }
    # 2026-11-10 17:30 UTC is 01:30 on the 11th: 中旬, not 上旬.
    assert counts(by_day[date(2026, 11, 11)].by_channel)["phone"] == 1
    assert stats.volume(session, *SECOND_DEKAD, SHANGHAI).total == 1


def test_days_follow_a_daylight_saving_change(engine: Engine) -> None:
    berlin = ZoneInfo("Europe/Berlin")  # summer time ends at 01:00 UTC on 2026-10-25
    received = [
        "10-25T00:30",  # CEST, 22:30 UTC on the 24th
        "10-25T23:30",  # CET, 22:30 UTC on the 25th: a fixed +02:00 would say the 26th
        "10-26T00:30",
    ]
    with make_sessionmaker(engine).begin() as session:
        for n, at in enumerate(received):
            row = [str(n), at, "web", "-", "received", "-", "", ""]
            session.add(make_letter(row, berlin))

    with make_sessionmaker(engine)() as session:
        volume = stats.volume(
            session, local("10-24T00:00", berlin), local("10-27T00:00", berlin), berlin
        )

    assert [(d.day.day, d.total) for d in volume.by_day] == [(24, 0), (25, 2), (26, 1)]


# -- departments --------------------------------------------------------------------------


def test_replies_are_counted_as_they_stood_at_the_end_of_the_period(session: Session) -> None:
    figures = figures_of(session)

    # 园林局 is inactive and has nothing: left out; 生态环境局 is listed with zeros.
    assert list(figures) == ["chengguan", "huanbao", "jiaotong", "shuiwu"]
    assert [
        (f.assigned, f.replied, f.replied_on_time, f.overdue_open) for f in figures.values()
    ] == [
        (7, 5, 4, 1),  # 城管局: letter 20 answered only on the 12th, after its deadline
        (0, 0, 0, 0),  # 生态环境局
        (4, 4, 4, 0),  # 交通运输局
        (3, 1, 0, 3),  # 水务局: two of this period and one from October still open
    ]


def test_rates_and_average_handling_time(session: Session) -> None:
    chengguan, jiaotong, shuiwu = (
        figures_of(session)[c] for c in ("chengguan", "jiaotong", "shuiwu")
    )

    assert chengguan.reply_rate == pytest.approx(5 / 7)
    assert chengguan.on_time_rate == pytest.approx(4 / 5)
    assert chengguan.handling_hours == pytest.approx(40.0)  # (24 + 48 + 12 + 36 + 80) / 5
    assert jiaotong.on_time_rate == 1.0
    assert jiaotong.handling_hours == pytest.approx(25.0)
    assert shuiwu.on_time_rate == 0.0
    assert shuiwu.handling_hours == pytest.approx(100.0)


def test_chasing_and_visits_count_the_events_of_the_period(session: Session) -> None:
    figures = figures_of(session)

    def chasing(f: stats.DepartmentFigures) -> tuple[int, ...]:
        return (
            f.returns,
            f.urges,
            f.supervisions,
            f.forced,
            f.extensions_requested,
            f.extensions_approved,
            f.visited,
            f.satisfied,
        )

    assert chasing(figures["chengguan"]) == (1, 1, 0, 0, 0, 0, 4, 3)
    assert chasing(figures["jiaotong"]) == (0, 0, 0, 0, 0, 0, 2, 2)
    assert chasing(figures["shuiwu"]) == (0, 2, 1, 1, 2, 1, 1, 0)
    assert figures["chengguan"].satisfaction_rate == pytest.approx(0.75)


# -- 综合考评 -------------------------------------------------------------------------------


def test_the_assessment_ranks_by_score_with_penalties(session: Session) -> None:
    ranking = stats.assess(figures_of(session).values())

    assert [(a.rank, a.code, a.score) for a in ranking] == [
        (1, "jiaotong", 95.71),  # 40/7 + 25 + 25 + 25 + 15
        (2, "chengguan", 80.11),  # 10 + 125/7 + 20 + 18.75 + (15 - 1 urge - 0.5 return)
        (3, "shuiwu", 17.62),  # 30/7 + 25/3 + 0 + 0 + (15 - 2 urges - 3 - 5)
    ]
    shuiwu = ranking[2]
    assert (shuiwu.penalties, shuiwu.process) == (10.0, 5.0)


def test_equal_scores_are_ranked_by_code() -> None:
    same = stats.DepartmentFigures("b", "乙局", 2, 2, 2, 0, 1.0, 0, 0, 0, 0, 0, 0, 1, 1)

    ranking = stats.assess([same, replace(same, code="a", name="甲局")])

    assert [(a.rank, a.code, a.score) for a in ranking] == [(1, "a", 100.0), (2, "b", 100.0)]


def test_a_rate_without_a_denominator_gives_its_share_to_the_others() -> None:
    unvisited = stats.DepartmentFigures("a", "甲局", 4, 2, 2, 0, 1.0, 0, 0, 0, 0, 0, 0, 0, 0)

    (only,) = stats.assess([unvisited])

    # workload 10 + reply 12.5 + timeliness 25 = 47.5 of 60, scaled to 85, + process 15
    assert only.satisfaction is None
    assert only.score == pytest.approx(47.5 * 85 / 60 + 15, abs=0.005)


def test_weights_must_make_up_one_hundred_points() -> None:
    with pytest.raises(ValueError, match="sum to 100"):
        stats.AssessmentWeights(workload=20)
    with pytest.raises(ValueError, match="negative"):
        stats.AssessmentWeights(per_urge=-1)


# -- hot topics ---------------------------------------------------------------------------


def test_hot_topics_are_the_repeated_words_and_districts(session: Session) -> None:
    hot = stats.hot_topics(session, *FIRST_DEKAD, top=3)

    assert hot.words[0] == stats.Count("路灯", 14)  # 7 subjects and 7 texts, not 路 / 灯不亮
    # 停水 and 噪音 come six times each: the tie goes by the word.
    assert hot.words[1:] == (stats.Count("不亮", 11), stats.Count("停水", 6))
    assert hot.districts == (
        stats.Count("翠屏区", 10),
        stats.Count("南溪区", 5),
        stats.Count("叙州区", 5),
    )
    assert hot.sampled == 26  # 29 letters, 3 rejected


def test_hot_topics_leave_out_rejected_letters_and_stopwords(session: Session) -> None:
    words = counts(stats.hot_topics(session, *FIRST_DEKAD, top=100).words)

    assert "开发票" not in words and "代开" not in words
    assert not {"什么", "影响", "的", "。"} & set(words)


def test_hot_topics_read_only_the_most_recent_letters(session: Session) -> None:
    hot = stats.hot_topics(session, *FIRST_DEKAD, sample=3)

    assert (hot.sampled, hot.sample_limit) == (3, 3)
    assert hot.words[0] == stats.Count("绿化", 2)  # letter 29, the last of the period
    assert "路灯" not in counts(hot.words)


@pytest.mark.parametrize(
    ("start", "end"),
    [(FIRST_DEKAD[1], FIRST_DEKAD[0]), (datetime(2026, 11, 1), datetime(2026, 11, 11))],
    ids=["reversed", "naive"],
)
def test_a_period_that_is_not_an_aware_interval_is_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        stats.volume(Session(), start, end, SHANGHAI)  # refused before any query


# -- rendering ----------------------------------------------------------------------------


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_the_text_bulletin_has_every_section_with_aligned_columns(session: Session) -> None:
    text = reports.render_text(bulletin(session))
    lines = text.splitlines()

    assert lines[0] == "2026年11月上旬 12345市民热线通报"
    assert lines[1] == "统计时段：2026年11月1日至2026年11月10日（Asia/Shanghai）"
    for heading in (
        "一、来信总量与渠道",
        "二、类别",
        "三、各单位办理情况",
        "四、热点问题",
        "五、综合考评排名",
    ):
        assert heading in lines
    channels = lines[lines.index("一、来信总量与渠道") + 2 :][:7]
    assert channels[0].split() == ["渠道", "件数", "占比(%)"]
    assert channels[1].split() == ["电话", "10", "34.5"]
    assert len({display_width(line) for line in channels}) == 1
    ranking = lines[lines.index("五、综合考评排名") + 1 :][:4]
    assert [row.split()[:3] for row in ranking[1:]] == [
        ["1", "市交通运输局", "95.71"],
        ["2", "市城管局", "80.11"],
        ["3", "市水务局", "17.62"],
    ]
    assert "路灯" in text


def test_csv_has_a_bom_and_one_headed_table_per_section(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "bulletin.csv"
    reports.write_csv(bulletin(session), path)

    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    headings = [rows[i + 1][0] for i, row in enumerate(rows) if not row]
    assert rows[0] == ["2026年11月上旬 12345市民热线通报"]
    assert headings == [
        "来信总量与渠道",
        "每日来信",
        "类别",
        "办理状态",
        "各单位来信",
        "各单位办理情况",
        "热点词语",
        "热点区域",
        "综合考评排名",
    ]
    handling = rows.index(["各单位办理情况"])
    assert tuple(rows[handling + 1]) == reports.HANDLING_HEADERS
    assert rows[handling + 2][:9] == ["市城管局", "7", "5", "4", "1", "71.4", "80.0", "40.0", "1"]


def test_xlsx_has_a_sheet_per_section_with_bold_chinese_headings(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "bulletin.xlsx"
    reports.write_xlsx(bulletin(session), path)

    book = load_workbook(path)
    assert book.sheetnames[0] == "来信总量与渠道" and len(book.sheetnames) == 9
    ranking = book["综合考评排名"]
    assert [c.value for c in ranking[1]][:3] == ["名次", "单位", "得分"]
    assert all(c.font.bold for c in ranking[1])
    assert [c.value for c in ranking[2]][:3] == [1, "市交通运输局", 95.71]
    days = book["每日来信"]
    assert [c.value for c in days[1]] == [
        "日期",
        "电话",
        "短信",
        "电子邮件",
        "传真",
        "网站",
        "网上呼叫",
        "合计",
    ]
    assert days["A2"].value == datetime(2026, 11, 1)
    assert days["H2"].value == 3


def test_bulletin_json_is_plain_data_keyed_by_stored_names(session: Session) -> None:
    shape = reports.bulletin_json(bulletin(session))

    assert json.loads(json.dumps(shape, ensure_ascii=False)) == shape
    assert shape["period"] == {
        "start": "2026-10-31T16:00:00Z",
        "end": "2026-11-10T16:00:00Z",
        "zone": "Asia/Shanghai",
    }
    assert shape["volume"]["by_channel"]["phone"] == 10
    assert shape["volume"]["by_day"][2] == {
        "date": "2026-11-03",
        "total": 3,
        "by_channel": {"phone": 1, "sms": 1, "email": 0, "fax": 1, "web": 0, "webcall": 0},
    }
    chengguan = shape["departments"][0]
    assert (chengguan["code"], chengguan["on_time_rate"], chengguan["handling_hours"]) == (
        "chengguan",
        0.8,
        40.0,
    )
    assert [r["code"] for r in shape["assessment"]["ranking"]] == [
        "jiaotong",
        "chengguan",
        "shuiwu",
    ]
    assert shape["hot_topics"]["words"][0] == {"word": "路灯", "count": 14}


# -- query plans --------------------------------------------------------------------------

# Each part of the bulletin, and the indexes its scans of the period read without the
# table (store/migrations/versions/0015): at a million letters, reading the rows of a
# ten-day period made the bulletin take seconds (benchmarks/bulletin.py).
PARTS = [
    (
        lambda s: stats.volume(s, *FIRST_DEKAD, SHANGHAI),
        ["ix_letters_received_figures", "ix_assignments_letter_figures"],
    ),
    (
        lambda s: stats.department_figures(s, *FIRST_DEKAD),
        ["ix_assignments_assigned_figures", "ix_assignments_overdue"],
    ),
    (lambda s: stats.hot_topics(s, *FIRST_DEKAD), ["ix_letters_received_figures"]),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("part", "indexes"), PARTS, ids=["volume", "departments", "hot-topics"])
def test_each_part_counts_from_covering_indexes_not_the_tables(
    engine: Engine, session: Session, part: Any, indexes: list[str]
) -> None:
    """SQLite as the gateway runs it (never analysed). PostgreSQL chooses by the tables'
    size, so on these few rows its plans say nothing; benchmarks/bulletin.py measures it."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        statements.append((sql, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        part(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    connection = session.connection().connection.driver_connection
    assert connection is not None
    plans = [
        "\n".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        for sql, params in statements
    ]
    plan = "\n".join(plans)

    for index in indexes:
        assert f"COVERING INDEX {index} " in plan, plan
    for table_ in ("letters", "assignments", "events"):
        assert f"SCAN {table_}" not in plan, plan
