"""Administration over real requests: users, departments, API tokens, the audit log, and
the `hotline console` commands."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from gateway import cli
from gateway.contract.config import ApiConfig, load_config
from gateway.frontends.api import auth
from gateway.frontends.console import cli as console_cli
from store.db import make_sessionmaker
from store.letters import record_event
from store.models import ApiToken, ConsoleUser, Department, Event, Letter
from tests.console.conftest import PASSWORD, Browser, Desk
from tests.gateway.test_workflow import ROUTING

NEW_PASSWORD = "another long secret"


def kinds(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Event.kind).order_by(Event.id)).scalars())


def user(engine: Engine, username: str) -> ConsoleUser:
    with make_sessionmaker(engine)() as session:
        return session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).one()


def user_id(engine: Engine, username: str) -> int:
    return user(engine, username).id


async def test_only_an_admin_has_the_admin_pages(desk: Desk) -> None:
    clerk, operator = await desk.signed_in("li"), await desk.signed_in("zhang")
    pages = ("users", "departments", "tokens", "audit")

    for browser in (clerk, operator):
        for name in pages:
            answer = await browser.get(f"/console/admin/{name}")
            assert answer.status_code == 403, name
        added = await browser.post(
            "/console/admin/users",
            username="mallory",
            name="某人",
            role="admin",
            password=PASSWORD,
            password2=PASSWORD,
        )
        assert added.status_code == 403
    assert "mallory" not in {u for (u,) in _usernames(desk.engine)}


def _usernames(engine: Engine) -> list[tuple[str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(ConsoleUser.username))]


async def test_a_post_without_the_csrf_token_is_refused(desk: Desk) -> None:
    admin = await desk.signed_in("root")

    answer = await admin.client.post(
        "/console/admin/users",
        data={"username": "zhao", "name": "赵六", "role": "operator", "password": PASSWORD},
    )

    assert answer.status_code == 403
    assert "页面已过期" in answer.text
    assert "zhao" not in {u for (u,) in _usernames(desk.engine)}


async def test_an_admin_adds_a_clerk_who_then_signs_in(desk: Desk) -> None:
    admin = await desk.signed_in("root")

    added = await admin.post(
        "/console/admin/users",
        username="zhao",
        name="赵六",
        role="department",
        department="environment",
        password=NEW_PASSWORD,
        password2=NEW_PASSWORD,
    )

    assert added.status_code == 303
    listing = await admin.client.get(added.headers["location"])
    assert "已添加用户：zhao" in listing.text
    assert re.search(r'data-user="zhao">.*?市生态环境局', listing.text, re.S)
    clerk = Browser(desk.browser())
    assert (await clerk.sign_in("zhao", NEW_PASSWORD)).status_code == 303
    home = await clerk.client.get("/console/", follow_redirects=True)
    assert str(home.url).endswith("/console/queue")
    with make_sessionmaker(desk.engine)() as session:
        event = session.scalars(select(Event).where(Event.kind == "console.user_added")).one()
        assert event.actor == "console:root"
        assert event.detail == {
            "username": "zhao",
            "role": "department",
            "department": "environment",
        }
        assert NEW_PASSWORD not in str(event.detail)


REFUSED_USERS = [
    ({"username": "zhang"}, "该用户名已被使用"),
    ({"password": "short", "password2": "short"}, "密码至少 10 位"),
    ({"password2": "something else"}, "两次输入的密码不一致"),
    ({"role": "department", "department": ""}, "须选择所属单位"),
    ({"role": "department", "department": "nowhere"}, "没有这个单位"),
    ({"username": "a b"}, "用户名须为"),
]


async def test_a_user_that_cannot_be_added_is_a_400_that_keeps_the_form(desk: Desk) -> None:
    admin = await desk.signed_in("root")

    for form, says in REFUSED_USERS:
        fields = {
            "username": "zhao",
            "name": "赵六",
            "role": "operator",
            "password": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            **form,
        }
        answer = await admin.post("/console/admin/users", **fields)
        assert answer.status_code == 400, form
        assert says in answer.text, form
        assert 'value="赵六"' in answer.text  # what was typed is still there
        assert NEW_PASSWORD not in answer.text  # but never a password
    assert "console.user_added" not in kinds(desk.engine)


async def test_disabling_a_user_ends_their_session_and_enabling_lets_them_back(
    desk: Desk,
) -> None:
    admin, clerk = await desk.signed_in("root"), await desk.signed_in("wang")
    assert (await clerk.get("/console/admin/users")).status_code == 403  # signed in
    wang = user_id(desk.engine, "wang")

    disabled = await admin.post(f"/console/admin/users/{wang}/disable")

    assert disabled.status_code == 303
    assert (await clerk.get("/console/queue")).status_code == 303  # to the sign-in page
    again = Browser(desk.browser())
    refused = await again.sign_in("wang", PASSWORD)
    assert refused.status_code == 403 and "已停用" in refused.text
    assert (await admin.post(f"/console/admin/users/{wang}/enable")).status_code == 303
    assert (await again.sign_in("wang", PASSWORD)).status_code == 303
    root = user_id(desk.engine, "root")
    himself = await admin.post(f"/console/admin/users/{root}/disable")
    assert himself.status_code == 400 and "不能停用自己的账号" in himself.text
    assert kinds(desk.engine).count("console.user_disabled") == 1


async def test_a_password_reset_ends_the_sessions_and_the_new_password_works(
    desk: Desk,
) -> None:
    admin, clerk = await desk.signed_in("root"), await desk.signed_in("li")
    li = user_id(desk.engine, "li")

    typed = await admin.post(
        f"/console/admin/users/{li}/password", password=NEW_PASSWORD, password2=NEW_PASSWORD
    )
    generated = await admin.post(f"/console/admin/users/{li}/password")

    assert typed.status_code == 303
    assert (await clerk.get("/console/queue")).status_code == 303  # signed out
    secret = re.search(r'<p class="secret">([^<]+)</p>', generated.text)
    assert generated.status_code == 200 and secret
    fresh = Browser(desk.browser())
    assert (await fresh.sign_in("li", NEW_PASSWORD)).status_code == 401  # replaced since
    assert (await fresh.sign_in("li", secret.group(1))).status_code == 303
    listing = await admin.get("/console/admin/users")
    assert secret.group(1) not in listing.text  # shown once
    with make_sessionmaker(desk.engine)() as session:
        resets = session.scalars(select(Event).where(Event.kind == "console.password_reset"))
        details = [e.detail for e in resets]
    assert details == [
        {"username": "li", "generated": False},
        {"username": "li", "generated": True},
    ]


async def test_unlocking_a_locked_user_lets_them_sign_in(desk: Desk) -> None:
    admin = await desk.signed_in("root")
    with make_sessionmaker(desk.engine).begin() as session:
        locked = session.scalars(select(ConsoleUser).where(ConsoleUser.username == "du")).one()
        locked.locked_until = desk.clock() + timedelta(minutes=15)
        du = locked.id
    browser = Browser(desk.browser())
    assert (await browser.sign_in("du", PASSWORD)).status_code == 403
    assert "已锁定" in (await admin.get("/console/admin/users")).text

    assert (await admin.post(f"/console/admin/users/{du}/unlock")).status_code == 303

    assert (await browser.sign_in("du", PASSWORD)).status_code == 303


async def test_a_new_token_is_shown_once_stored_hashed_and_revocable(desk: Desk) -> None:
    admin = await desk.signed_in("root")

    created = await admin.post(
        "/console/admin/tokens", name="城市平台", scope=["read", "act"], department="city-admin"
    )

    assert created.status_code == 200, created.text
    found = re.search(r'<p class="secret">(hk_[^<]+)</p>', created.text)
    assert found
    token = found.group(1)
    with make_sessionmaker(desk.engine)() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == auth.digest(token)
        assert token not in {row.name, row.token_hash, row.department}
        assert (row.name, row.scopes, row.department) == ("城市平台", ["act", "read"], "city-admin")
        assert auth.find(session, ApiConfig(), token) == auth.Principal(
            "城市平台", frozenset({"read", "act"}), "city-admin"
        )
        event = session.scalars(select(Event).where(Event.kind == "console.token_created")).one()
        assert token not in str(event.detail)
    listing = await admin.get("/console/admin/tokens")
    assert token not in listing.text and "城市平台" in listing.text
    refused = await admin.post("/console/admin/tokens", name="没有权限")
    assert refused.status_code == 400 and "请至少选择一项权限" in refused.text

    revoked = await admin.post(f"/console/admin/tokens/{row.id}/revoke")

    assert revoked.status_code == 303
    with make_sessionmaker(desk.engine)() as session:
        assert auth.find(session, ApiConfig(), token) is None


async def test_departments_contacts_and_active_flag_are_edited_and_synced_back(
    desk: Desk,
) -> None:
    admin = await desk.signed_in("root")

    saved = await admin.post(
        "/console/admin/departments/environment", contacts="hb@h.local\nduty@h.local"
    )
    bad = await admin.post("/console/admin/departments/housing", contacts="not an address")

    assert saved.status_code == 303
    assert bad.status_code == 400 and "不是电子邮件地址" in bad.text
    page = await admin.get("/console/admin/departments")
    assert re.search(r'data-department="environment">.*?停用.*?与配置文件不同', page.text, re.S)
    with make_sessionmaker(desk.engine)() as session:
        row = session.scalars(select(Department).where(Department.code == "environment")).one()
        assert (row.active, row.contacts) == (False, ["hb@h.local", "duty@h.local"])
    synced = await admin.post("/console/admin/departments/sync")
    assert synced.status_code == 303
    with make_sessionmaker(desk.engine)() as session:
        row = session.scalars(select(Department).where(Department.code == "environment")).one()
        assert (row.active, row.contacts) == (True, ["hb@h.local"])
    assert {"console.department_changed", "console.departments_synced"} <= set(kinds(desk.engine))


async def test_the_audit_log_lists_sign_ins_and_changes_newest_first_without_pii(
    desk: Desk,
) -> None:
    admin = await desk.signed_in("root")
    await admin.post(
        "/console/admin/users",
        username="zhao",
        name="赵六",
        role="operator",
        password=NEW_PASSWORD,
        password2=NEW_PASSWORD,
    )
    number = desk.letter(1)
    with make_sessionmaker(desk.engine).begin() as session:
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        record_event(
            session,
            at=desk.clock(),
            actor="console:zhang",
            kind="pii.revealed",
            letter=letter,
            reason="核实来电",
        )
        # A detail no page may show (as a careless caller might write it).
        record_event(session, at=desk.clock(), actor="api:x", kind="pii_read", phone="13912345678")

    page = await admin.get("/console/admin/audit")

    assert page.status_code == 200
    shown = re.findall(r'<tr data-kind="([^"]+)">', page.text)
    assert shown[:4] == ["pii_read", "pii.revealed", "console.user_added", "console.signed_in"]
    assert "received" not in shown  # a letter's own history is not the audit log
    assert "理由：核实来电" in page.text and "用户：zhao" in page.text
    assert "13912345678" not in page.text and "张三" not in page.text
    assert f'<a href="/console/letters/{number}">' in page.text  # which letter, not whose
    only = await admin.get("/console/admin/audit?kind=console.user_added&actor=root")
    assert re.findall(r'<tr data-kind="([^"]+)">', only.text) == ["console.user_added"]


async def test_the_audit_log_pages_by_id(desk: Desk) -> None:
    admin = await desk.signed_in("root")
    with make_sessionmaker(desk.engine).begin() as session:
        for n in range(60):
            record_event(
                session,
                at=desk.clock(),
                actor="console:root",
                kind="console.user_unlocked",
                username=f"u{n}",
            )

    first = await admin.get("/console/admin/audit?kind=console.user_unlocked")
    later = re.search(r'href="/console/admin/audit\?([^"]+)">更早', first.text)
    assert later
    second = await admin.get("/console/admin/audit?" + later.group(1).replace("&amp;", "&"))

    users = re.compile(r"用户：(u\d+)")
    assert users.findall(first.text) == [f"u{n}" for n in range(59, 9, -1)]
    assert users.findall(second.text) == [f"u{n}" for n in range(9, -1, -1)]
    assert "更早" not in second.text


def test_the_console_commands_add_a_user_set_a_password_and_list(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(
        None, environ={**os.environ, "HOTLINE_DATABASE_URL": database_url}
    ).model_copy(update={"routing": ROUTING})
    monkeypatch.setenv(console_cli.PASSWORD_ENV, NEW_PASSWORD)

    def hotline(*args: str) -> int:
        parsed = cli._parser().parse_args(["console", *args])
        return console_cli.console(config, parsed, cli.print_json)

    added = hotline("add-user", "root", "--name", "管理员", "--role", "admin")
    clerk = hotline(
        "add-user", "li", "--name", "李四", "--role", "department", "--department", "housing"
    )
    taken = hotline("add-user", "root", "--name", "又一个", "--role", "admin")
    reset = hotline("set-password", "li")
    missing = hotline("set-password", "nobody")
    capsys.readouterr()
    listed = hotline("users")

    assert (added, clerk, taken, reset, missing, listed) == (0, 0, 2, 0, 1, 0)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in lines] == [
        ["li", "department", "housing", "active"],
        ["root", "admin", "-", "active"],
    ]
    assert NEW_PASSWORD not in "\n".join(lines)
