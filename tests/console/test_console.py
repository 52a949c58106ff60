"""The console's promises over real requests: sign-in with lockout, CSRF, roles, the
dispatch -> sign -> reply path, and confidentiality (masking, reveal with a reason)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from channels.web.views import published_count, published_page
from gateway.contract.contact import Citizen
from gateway.frontends.console import accounts
from store.db import make_sessionmaker
from store.missed_calls import record_missed
from store.models import ConsoleUser, Event, Letter
from tests.conftest import SHANGHAI, build_intake
from tests.console.conftest import PASSWORD, Browser, Desk, console_config, open_desk
from tests.support.tcp_proxy import TcpProxy

PHONE = "+8613912340001"


async def test_a_wrong_password_is_refused_and_five_lock_the_account(desk: Desk) -> None:
    browser = Browser(desk.browser())
    wrong = await browser.sign_in("zhang", "not the password")
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    unknown = await browser.sign_in("nobody", "not the password")
    assert unknown.status_code == 401 and "用户名或密码错误" in unknown.text  # same answer
    for _ in range(4):
        last = await browser.sign_in("zhang", "still wrong!!")
    assert last.status_code == 403 and "锁定" in last.text
    locked = await browser.sign_in("zhang", PASSWORD)
    assert locked.status_code == 403, "the right password does not open a locked account"
    with make_sessionmaker(desk.engine)() as s:
        kinds = s.scalars(select(Event.kind).where(Event.actor == "console:zhang")).all()
    assert kinds.count("console.sign_in_failed") == 4 and "console.locked" in kinds


async def test_pages_need_a_session_and_forms_need_the_csrf_token(desk: Desk) -> None:
    number = desk.letter(1, text="请问办理居住证需要什么材料？")  # waits in triage
    anonymous = desk.browser()
    page = await anonymous.get("/console/inbox")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login")
    zhang = await desk.signed_in("zhang")
    forged = await zhang.client.post(
        f"/console/letters/{number}/act", data={"action": "reject", "reason": "empty"}
    )
    assert forged.status_code == 403
    with make_sessionmaker(desk.engine)() as s:
        assert s.scalars(select(Letter.status)).one() == "triage"
    page = await zhang.get("/console/inbox")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "no-store" in page.headers["cache-control"]


async def test_an_operator_dispatches_and_the_clerk_signs_and_replies(desk: Desk) -> None:
    number = desk.letter(1, text="请问办理居住证需要什么材料？")  # no rule: waits in triage
    zhang = await desk.signed_in("zhang")
    inbox = await zhang.get("/console/inbox")
    assert number in inbox.text and "<span>短信 1</span>" in inbox.text  # new letters by channel
    assert number in (await zhang.get("/console/inbox?q=路灯")).text  # the subject
    assert number in (await zhang.get(f"/console/inbox?q={number}")).text
    assert number not in (await zhang.get("/console/inbox?q=%25")).text  # a literal %
    forged = await zhang.post(
        f"/console/letters/{number}/act",
        action="assign",
        department="city-admin",
        reply_type="tomorrow",
    )
    assert forged.status_code == 409 and "未知的答复类型" in forged.text
    assert "已交办" not in forged.text
    dispatched = await zhang.post(
        f"/console/letters/{number}/act",
        action="assign",
        department="city-admin",
        reply_type="time_limited",
    )
    assert dispatched.status_code == 303, dispatched.text
    li = await desk.signed_in("li")
    queue = await li.get("/console/queue")
    assert number in queue.text
    assert "（承办单位 · 市城市管理局）" in queue.text  # the header names the department
    signed = await li.post(f"/console/letters/{number}/act", action="sign")
    assert signed.status_code == 303
    undated = await li.post(
        f"/console/letters/{number}/act", action="reply", kind="interim", text="正在办理。"
    )
    assert undated.status_code == 409 and "阶段性答复须填写承诺办结日期" in undated.text
    replied = await li.post(
        f"/console/letters/{number}/act", action="reply", kind="final", text="请携带身份证办理。"
    )
    assert replied.status_code == 303
    page = await li.get(f"/console/letters/{number}")
    assert "已答复" in page.text and "请携带身份证办理。" in page.text
    # The operator may not act as the department, and the department not as the operator.
    refused = await zhang.post(f"/console/letters/{number}/act", action="sign")
    assert refused.status_code == 409


async def test_a_clerk_never_sees_another_departments_letter(desk: Desk) -> None:
    mine = desk.letter(1)  # streetlight: city-admin
    theirs = desk.letter(2, text="楼下工地夜间噪音扰民。")  # noise: environment
    li = await desk.signed_in("li")
    assert (await li.get(f"/console/letters/{mine}")).status_code == 200
    for url in (
        f"/console/letters/{theirs}",
        f"/console/letters/{theirs}/files/1",
        f"/console/letters/{theirs}/files/2",
        f"/console/letters/NO-SUCH-{theirs}",
    ):
        assert (await li.get(url)).status_code == 404, url
    for action in ("sign", "reply", "return", "extend", "opinion"):
        answer = await li.post(
            f"/console/letters/{theirs}/act", action=action, text="x", reason="x"
        )
        assert answer.status_code == 404, action
    queue = await li.get("/console/queue")
    assert mine in queue.text and theirs not in queue.text
    for page in ("/console/inbox", "/console/supervision", "/console/follow-up"):
        assert (await li.get(page)).status_code == 403, page
    reveal = await li.post(f"/console/letters/{mine}/reveal", reason="需要联系来信人")
    assert reveal.status_code == 403


async def test_contacts_are_masked_and_a_reveal_needs_a_reason_on_record(desk: Desk) -> None:
    number = desk.letter(1, citizen=Citizen(name="赵六", phone=PHONE))
    li = await desk.signed_in("li")
    page = await li.get(f"/console/letters/{number}")
    assert "139****0001" in page.text and "13912340001" not in page.text
    zhang = await desk.signed_in("zhang")
    page = await zhang.get(f"/console/letters/{number}")
    assert "13912340001" not in page.text
    no_reason = await zhang.post(f"/console/letters/{number}/reveal", reason="")
    assert no_reason.status_code == 400 and "13912340001" not in no_reason.text
    shown = await zhang.post(f"/console/letters/{number}/reveal", reason="回访需要联系来信人")
    assert shown.status_code == 200 and "13912340001" in shown.text
    with make_sessionmaker(desk.engine)() as s:
        event = s.scalars(select(Event).where(Event.kind == "pii.revealed")).one()
    assert event.actor == "console:zhang" and event.detail["reason"] == "回访需要联系来信人"
    # The clerk's history does not show who looked; the operator's does.
    assert "查看来信人信息" not in (await li.get(f"/console/letters/{number}")).text
    assert "查看来信人信息" in (await zhang.get(f"/console/letters/{number}")).text


async def test_a_reporters_identity_never_reaches_the_department(desk: Desk) -> None:
    text = "举报翠屏区人民路路灯工程偷工减料。我的电话13912340002，身份证510102199001011234。"
    number = desk.letter(1, citizen=Citizen(name="钱七", phone="+8613912340002"), text=text)
    with make_sessionmaker(desk.engine)() as s:
        letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        assert (letter.category, letter.status) == ("report", "assigned")  # streetlights
    li = await desk.signed_in("li")
    page = await li.get(f"/console/letters/{number}")
    assert page.status_code == 200 and "偷工减料" in page.text
    for canary in ("钱七", "13912340002", "0002", "510102199001011234"):
        assert canary not in page.text, canary
    assert re.search(r"不向承办单位提供", page.text)


async def test_only_a_public_reply_to_a_letter_not_confidential_is_published(
    desk: Desk,
) -> None:
    # Four streetlights (city-admin), not one matter; the last citizen was never asked
    # whether their letter may be published (an SMS), the others consented (the web form).
    places = ("人民路", "南岸街", "西郊路", "北大街")
    numbers = [
        desk.letter(
            n,
            text=f"{place}的路灯坏了。",
            citizen=Citizen(phone=f"+861390000000{n}"),
            publish_consent=True if n < 3 else None,
        )
        for n, place in enumerate(places)
    ]
    with make_sessionmaker(desk.engine).begin() as s:
        s.scalars(
            select(Letter).where(Letter.tracking_number == numbers[2])
        ).one().confidential = True
    li = await desk.signed_in("li")
    for number, public in zip(numbers, ("yes", "", "yes", "yes"), strict=True):
        await li.post(f"/console/letters/{number}/act", action="sign")
        done = await li.post(
            f"/console/letters/{number}/act",
            action="reply",
            kind="final",
            text="已修复。",
            public=public,
        )
        assert done.status_code == 303, done.text
    with make_sessionmaker(desk.engine)() as s:
        assert published_count(s) == 1
        shown = published_page(s, 1, 10, SHANGHAI)
    assert [p["number"] for p in shown] == numbers[:1]


async def test_an_extension_asked_by_the_clerk_is_decided_by_the_operator(desk: Desk) -> None:
    number = desk.letter(1)  # streetlight: assigned to city-admin
    zhang = await desk.signed_in("zhang")
    assert 'id="act-decide-extension"' not in (await zhang.get(f"/console/letters/{number}")).text
    li = await desk.signed_in("li")
    asked = await li.post(f"/console/letters/{number}/act", action="extend", reason="需协调施工")
    assert asked.status_code == 303, asked.text
    page = await zhang.get(f"/console/letters/{number}")
    assert 'id="act-decide-extension"' in page.text and "需协调施工" in page.text
    with make_sessionmaker(desk.engine)() as s:
        before = s.scalars(select(Letter.due_at)).one()
    decided = await zhang.post(
        f"/console/letters/{number}/act", action="decide-extension", approve="yes"
    )
    assert decided.status_code == 303, decided.text
    with make_sessionmaker(desk.engine)() as s:
        assert s.scalars(select(Letter.due_at)).one() > before
    assert 'id="act-decide-extension"' not in (await zhang.get(f"/console/letters/{number}")).text


async def test_the_session_cookie_is_http_only_strict_and_secure_over_https(desk: Desk) -> None:
    transport = httpx.ASGITransport(app=desk.app, client=("198.51.100.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://hotline.test") as client:
        browser = Browser(client)
        answer = await browser.sign_in("zhang", PASSWORD)
    (cookie,) = [
        c.lower() for c in answer.headers.get_list("set-cookie") if c.startswith("hotline_console=")
    ]
    assert answer.status_code == 303
    for flag in ("httponly", "samesite=strict", "secure", "path=/console"):
        assert flag in cookie, flag


async def test_a_missed_call_is_called_back_with_its_number_shown_once_on_record(
    desk: Desk,
) -> None:
    with make_sessionmaker(desk.engine).begin() as s:
        record_missed(
            s, "sip", "call-1@trunk", desk.clock(), "hung_up_in_menu", "+8613912340003", "12345"
        )
    li = await desk.signed_in("li")
    assert (await li.get("/console/missed-calls")).status_code == 403
    zhang = await desk.signed_in("zhang")
    listed = await zhang.get("/console/missed-calls")
    assert "139****0003" in listed.text and "13912340003" not in listed.text
    (call_id,) = re.findall(r"/console/missed-calls/(\d+)/call", listed.text)
    calling = await zhang.post(f"/console/missed-calls/{call_id}/call")
    assert calling.status_code == 200 and "+8613912340003" in calling.text
    with make_sessionmaker(desk.engine)() as s:
        event = s.scalars(select(Event).where(Event.kind == "pii.revealed")).one()
    assert event.actor == "console:zhang" and event.detail["missed_call"] == int(call_id)
    done = await zhang.post(f"/console/missed-calls/{call_id}/done")
    assert done.status_code == 303
    assert "139****0003" not in (await zhang.get("/console/missed-calls")).text
    assert "语音菜单中挂断" in (await zhang.get("/console/missed-calls?tab=done")).text


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_with_the_database_down_pages_say_so_and_come_back_after(
    database_url: str, engine: Engine, cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    desk = open_desk(cut_engine, build_intake(cut_engine, tmp_path))
    number = desk.letter(1, text="请问办理居住证需要什么材料？")
    zhang = await desk.signed_in("zhang")
    proxy.down()
    for answer in (
        await zhang.get("/console/inbox"),
        await zhang.post(f"/console/letters/{number}/act", action="reject", reason="empty"),
        await Browser(desk.browser()).sign_in("li", PASSWORD),
    ):
        assert answer.status_code == 503 and "暂时无法访问数据库" in answer.text
    proxy.up()
    assert number in (await zhang.get("/console/inbox")).text
    with make_sessionmaker(engine)() as s:
        assert s.scalars(select(Letter.status)).one() == "triage"  # nothing half-done


async def test_a_password_reset_while_a_sign_in_is_checked_makes_that_check_worthless(
    desk: Desk,
) -> None:
    sessions = make_sessionmaker(desk.engine)
    attempt = accounts.check(sessions(), "zhang", PASSWORD, desk.clock())
    assert attempt.matched  # checked, outside any transaction, against the old hash
    with sessions.begin() as s:
        user = s.scalars(select(ConsoleUser).where(ConsoleUser.username == "zhang")).one()
        accounts.set_password(s, user, "a brand new password", desk.clock())
    with sessions.begin() as s:
        assert accounts.sign_in(s, console_config().console, attempt, desk.clock()).outcome == (
            "wrong"
        )


HUGE = "36893488147419103232"  # 2**65: past any id the store can hold


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/letters/{number}/files/" + HUGE),
        ("POST", "/console/missed-calls/" + HUGE + "/call"),
        ("POST", "/console/missed-calls/" + HUGE + "/done"),
        ("POST", "/console/admin/users/" + HUGE + "/disable"),
        ("POST", "/console/admin/tokens/" + HUGE + "/revoke"),
    ],
    ids=["letter-file", "call-back", "called-back", "user-action", "revoke-token"],
)
async def test_an_id_past_the_stores_integers_is_no_page_not_a_server_error(
    desk: Desk, method: str, path: str
) -> None:
    number = desk.letter()
    root = await desk.signed_in("root")
    url = path.format(number=number)
    answer = await (root.get(url) if method == "GET" else root.post(url))
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    ("user", "page"), [("zhang", "/console/inbox"), ("root", "/console/admin/audit")]
)
async def test_a_cursor_past_the_stores_integers_is_ignored(
    desk: Desk, user: str, page: str
) -> None:
    desk.letter()
    staff = await desk.signed_in(user)
    answer = await staff.get(f"{page}?before={HUGE}")
    assert answer.status_code == 200, answer.text


async def test_an_operator_records_a_visit_as_mostly_satisfied(desk: Desk) -> None:
    number = desk.letter(1)  # streetlight: assigned to city-admin
    li = await desk.signed_in("li")
    await li.post(f"/console/letters/{number}/act", action="sign")
    await li.post(f"/console/letters/{number}/act", action="reply", kind="final", text="已修复。")
    zhang = await desk.signed_in("zhang")
    page = await zhang.get(f"/console/letters/{number}")
    assert 'value="mostly_satisfied"' in page.text  # the form offers 基本满意

    done = await zhang.post(
        f"/console/letters/{number}/act", action="visit", satisfaction="mostly_satisfied"
    )

    assert done.status_code == 303, done.text
    with make_sessionmaker(desk.engine)() as s:
        letter = s.scalars(select(Letter)).one()
        assert (letter.status, letter.satisfaction) == ("closed", "mostly_satisfied")
