"""坐席账号 over real requests, on SQLite and PostgreSQL: an administrator adds, resets and
removes operators' seats; each SIP password is on the one answer that made it, and in no
later page, log record, event or column."""

from __future__ import annotations

import hashlib
import html
import logging
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from starlette.applications import Starlette

from gateway.contract.config import ChannelsConfig, Config
from gateway.core import seats
from gateway.frontends.console.app import Console
from store.db import make_sessionmaker
from store.models import Base, ConsoleUser, Event, Seat
from tests.channels.sip.test_kamailio_seats import SEATS as SEATS_AT_KAMAILIO
from tests.channels.sip.test_kamailio_seats import Front, register
from tests.conftest import Parts
from tests.console.conftest import Browser, Desk, console_config, open_desk
from tests.gateway.test_workflow import ROUTING
from tests.support.processes import free_port

REALM = console_config().seats.realm
LENGTH = console_config().seats.password_length
SEATS = "/console/admin/seats"


def shown_password(page: httpx.Response) -> str:
    found = re.findall(r'<p class="secret">([^<]*)</p>', page.text)
    assert len(found) == 1, page.text
    return html.unescape(found[0])


def stored(engine: Engine) -> dict[str, tuple[str, str, str, str]]:
    """seat -> (operator, realm, HA1, state)"""
    with make_sessionmaker(engine)() as session:
        return {
            seat.username: (seat.user.username, seat.realm, seat.ha1, seat.state)
            for seat in seats.list_seats(session)
        }


def seat_events(engine: Engine) -> list[tuple[str, str, dict[str, object]]]:
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(
            select(Event).where(Event.kind.like("console.seat%")).order_by(Event.id)
        )
        return [(e.kind, e.actor, e.detail) for e in rows]


def in_any_column(engine: Engine, secret: str) -> list[str]:
    """Every table, every row, every column, as text: where the secret is found."""
    found = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                if secret in repr(tuple(row)):
                    found.append(table.name)
    return found


def in_any_log(caplog: pytest.LogCaptureFixture, secret: str) -> list[str]:
    return [r.name for r in caplog.records if secret in r.getMessage() or secret in repr(vars(r))]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


async def added(admin: Browser, username: str = "8001", user: str = "zhang") -> httpx.Response:
    return await admin.post(SEATS, username=username, user=user)


async def test_an_admin_adds_a_seat_and_sees_its_password_once(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await desk.signed_in("root")

    answer = await added(admin)

    assert answer.status_code == 200
    password = shown_password(answer)
    assert len(password) == LENGTH and password.isalnum()
    assert stored(desk.engine) == {
        "8001": ("zhang", REALM, md5(f"8001:{REALM}:{password}"), "signed_out")
    }
    again = await admin.get(SEATS)
    assert again.status_code == 200
    assert password not in again.text and 'class="secret"' not in again.text
    row = re.search(r'<tr data-seat="8001">(.*?)</tr>', again.text, re.S)
    assert row, again.text
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1])]
    assert cells[:5] == ["8001", "用户zhang（zhang）", "已签出", "2026-11-23 10:00", "未知"]
    assert seat_events(desk.engine) == [
        ("console.seat_added", "console:root", {"seat": "8001", "username": "zhang"})
    ]
    assert in_any_log(caplog, password) == []
    assert in_any_column(desk.engine, password) == []
    assert all(password not in value for value in answer.headers.values())


async def test_a_reset_makes_a_new_password_shown_once(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await desk.signed_in("root")
    first = shown_password(await added(admin))

    answer = await admin.post(f"{SEATS}/8001/password")

    assert answer.status_code == 200
    second = shown_password(answer)
    assert second != first
    assert stored(desk.engine)["8001"][2] == md5(f"8001:{REALM}:{second}")
    listing = await admin.get(SEATS)
    assert first not in listing.text and second not in listing.text
    assert [kind for kind, _, _ in seat_events(desk.engine)] == [
        "console.seat_added",
        "console.seat_password_reset",
    ]
    assert seat_events(desk.engine)[1][1:] == (
        "console:root",
        {"seat": "8001", "username": "zhang"},
    )
    for password in (first, second):
        assert in_any_log(caplog, password) == []
        assert in_any_column(desk.engine, password) == []


async def test_an_admin_removes_a_seat(desk: Desk) -> None:
    admin = await desk.signed_in("root")
    await added(admin)

    answer = await admin.post(f"{SEATS}/8001/remove")

    assert answer.status_code == 303
    listing = await admin.client.get(answer.headers["location"])
    assert "已删除坐席：8001" in listing.text
    assert 'data-seat="8001"' not in listing.text
    assert stored(desk.engine) == {}
    assert seat_events(desk.engine)[-1] == (
        "console.seat_removed",
        "console:root",
        {"seat": "8001", "username": "zhang"},
    )
    assert (await admin.post(f"{SEATS}/8001/remove")).status_code == 404
    assert (await admin.post(f"{SEATS}/8001/password")).status_code == 404
    assert len(seat_events(desk.engine)) == 2


@pytest.mark.parametrize("username", ["zhang", "du", "ling", "li"])
async def test_only_an_admin_manages_seats(desk: Desk, username: str) -> None:
    admin = await desk.signed_in("root")
    await added(admin)
    before = stored(desk.engine)
    someone = await desk.signed_in(username)

    answers = [
        await someone.get(SEATS),
        await added(someone, "8002"),
        await someone.post(f"{SEATS}/8001/password"),
        await someone.post(f"{SEATS}/8001/remove"),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403, 403]
    assert all("secret" not in a.text for a in answers)
    assert stored(desk.engine) == before
    assert len(seat_events(desk.engine)) == 1
    home = await someone.client.get("/console/", follow_redirects=True)
    assert SEATS not in home.text
    assert f'href="{SEATS}"' in (await admin.get("/console/admin/users")).text


def disable_operator(engine: Engine, username: str) -> None:
    with make_sessionmaker(engine).begin() as session:
        user = session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).one()
        user.active = False


REFUSED = [
    pytest.param({"user": "du"}, "只有话务员可以开通坐席。", id="a-supervisor"),
    pytest.param({"user": "root"}, "只有话务员可以开通坐席。", id="an-admin"),
    pytest.param({"user": "nobody"}, "没有这个用户。", id="no-such-user"),
    pytest.param({"username": "8001", "user": "qian"}, "该坐席名已被使用。", id="a-taken-name"),
    pytest.param({"username": "8002"}, "该话务员已有坐席，每人只能有一个。", id="a-second-seat"),
    pytest.param({"username": "80 01"}, "坐席名须为", id="a-space"),
    pytest.param({"username": "Seat1"}, "坐席名须为", id="upper-case"),
    pytest.param({"username": ""}, "坐席名须为", id="empty"),
    pytest.param({"user": "qian", "disabled": "1"}, "该用户已停用，不能开通坐席。", id="disabled"),
]


@pytest.mark.parametrize(("form", "message"), REFUSED)
async def test_a_seat_refused_is_one_message_on_the_kept_form(
    desk: Desk, form: dict[str, str], message: str
) -> None:
    with make_sessionmaker(desk.engine).begin() as session:
        zhang = session.scalars(select(ConsoleUser).where(ConsoleUser.username == "zhang")).one()
        session.add(
            ConsoleUser(
                username="qian",
                display_name="钱七",
                password_hash=zhang.password_hash,
                role="operator",
                active=True,
                failed_logins=0,
                created_at=desk.clock(),
            )
        )
    admin = await desk.signed_in("root")
    await added(admin)
    if "disabled" in form:
        disable_operator(desk.engine, "qian")
    # A copy: the table's dicts are shared by the SQLite and PostgreSQL runs.
    typed = {"username": "8009", "user": "zhang", **form}
    typed.pop("disabled", None)

    answer = await admin.post(SEATS, **typed)

    assert answer.status_code == 400
    problems = re.findall(r'<p class="problem" role="alert">([^<]*)</p>', answer.text)
    assert len(problems) == 1 and problems[0].startswith(message), problems
    assert 'class="secret"' not in answer.text
    assert f'name="username" value="{html.escape(typed["username"])}"' in answer.text
    assert list(stored(desk.engine)) == ["8001"]
    assert len(seat_events(desk.engine)) == 1


async def test_a_seat_change_without_the_csrf_token_is_refused(desk: Desk) -> None:
    admin = await desk.signed_in("root")
    await added(admin)

    answers = [
        await admin.client.post(SEATS, data={"username": "8002", "user": "zhang"}),
        await admin.client.post(f"{SEATS}/8001/password", data={"csrf": "forged"}),
        await admin.client.post(f"{SEATS}/8001/remove"),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert all("页面已过期" in a.text for a in answers)
    with make_sessionmaker(desk.engine)() as session:
        assert session.scalars(select(Seat.username)).all() == ["8001"]
    assert len(seat_events(desk.engine)) == 1


async def test_the_page_keeps_the_consoles_content_security_policy(desk: Desk) -> None:
    admin = await desk.signed_in("root")
    await added(admin)

    page = await admin.get(SEATS)

    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text
    assert page.text.count(f'name="csrf" value="{admin.csrf}"') == 4  # sign-out, 2 per seat, add


async def test_the_password_shown_registers_a_phone_at_kamailio_and_the_page_says_so(
    engine: Engine, parts: Parts, tmp_path: Path, database_url: str
) -> None:
    """The whole path: made on the page, typed into a desk phone (SIPp) that registers at a
    real Kamailio over this database; the page then reads the registration from Kamailio."""
    front, phone = Front(tmp_path, database_url), free_port()
    try:
        config = Config(
            routing=ROUTING, seats=SEATS_AT_KAMAILIO, channels=ChannelsConfig(sip=front.sip)
        )
        desk = open_desk(engine, parts)
        console = Console(config, make_sessionmaker(engine), parts.files, desk.workflow, desk.clock)
        desk.app = Starlette(routes=console.routes())
        admin = await desk.signed_in("root")
        first = shown_password(await added(admin, "1001"))
        assert phone_of(await admin.get(SEATS), "1001") == "未注册"

        assert register(front, "1001", "1001", first, port=phone).ok
        assert phone_of(await admin.get(SEATS), "1001") == "已注册"
        assert register(front, "1001", "1001", first, port=phone, expires=0).ok

        second = shown_password(await admin.post(f"{SEATS}/1001/password"))
        refused = register(front, "1001", "1001", first, refused=True)
        assert refused.ok and refused.messages.count("SIP/2.0 403 Forbidden") == 1
        assert register(front, "1001", "1001", second, port=phone).ok
        assert phone_of(await admin.get(SEATS), "1001") == "已注册"
    finally:
        front.kamailio.stop()
    assert phone_of(await admin.get(SEATS), "1001") == "未知"


def phone_of(page: httpx.Response, seat: str) -> str:
    found = re.search(
        rf'<tr data-seat="{seat}">.*?<td class="seat-phone">([^<]*)</td>', page.text, re.S
    )
    assert found, page.text
    return found[1]
