"""Administration: console users, departments and their notice contacts, API tokens, and
the audit log. Every change is written to the events table as a `console.*` event."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.responses import Response

from gateway.frontends.api import auth
from gateway.frontends.console import accounts
from gateway.frontends.console.accounts import ROLES, AccountError
from gateway.frontends.console.desk import Desk, NotFound
from store.letters import record_event
from store.models import ApiToken, ConsoleUser, Department

ROLE_LABELS = {
    "operator": "话务员",
    "supervisor": "督办员",
    "leader": "领导",
    "department": "承办单位",
    "admin": "管理员",
}
SCOPE_LABELS = {
    "read": "读取信件",
    "write": "提交来信",
    "act": "办理操作",
    "pii": "来信人信息",
}
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
MAX_CONTACTS = 20
DONE = {
    "added": "已添加用户",
    "disabled": "已停用用户，其登录会话已全部结束",
    "enabled": "已启用用户",
    "unlocked": "已解除锁定",
    "password": "已重置密码，该用户的登录会话已全部结束",
    "department": "已保存单位",
    "synced": "已按配置文件同步单位",
    "revoked": "已吊销令牌",
}


def _record(desk: Desk, kind: str, **detail: Any) -> None:
    record_event(desk.db, at=desk.now, actor=f"console:{desk.staff.username}", kind=kind, **detail)


def _done(desk: Desk) -> str:
    done = DONE.get(desk.query("done"), "")
    return f"{done}：{desk.query('what')}" if done and desk.query("what") else done


def _back(desk: Desk, path: str, done: str, what: str) -> Response:
    return desk.see_other(f"/console/admin/{path}?{urlencode({'done': done, 'what': what})}")


def _password(desk: Desk, name: str) -> str:
    """A password as typed: not stripped (a space may be part of it)."""
    value = desk.form.get(name) if desk.form is not None else None
    return value if isinstance(value, str) else ""


# -- users --------------------------------------------------------------------------------


def users(
    desk: Desk,
    status: int = 200,
    problem: str = "",
    typed: dict[str, str] | None = None,
    secret: tuple[str, str] | None = None,
) -> Response:
    rows = desk.db.execute(
        select(ConsoleUser, Department.code, Department.name)
        .outerjoin(Department, Department.id == ConsoleUser.department_id)
        .order_by(ConsoleUser.username)
    ).all()
    return desk.render(
        "admin_users.html",
        status,
        users=[
            {
                "id": user.id,
                "username": user.username,
                "name": user.display_name,
                "role": user.role,
                "department": name or code,
                "active": user.active,
                "locked": user.locked_until is not None and user.locked_until > desk.now,
                "locked_until": user.locked_until,
                "failed_logins": user.failed_logins,
                "last_login_at": user.last_login_at,
                "me": user.id == desk.staff.user_id,
            }
            for user, code, name in rows
        ],
        roles=ROLE_LABELS,
        departments=_active_departments(desk),
        problem=problem,
        notice=_done(desk) if status == 200 and not secret else "",
        typed=typed or {},
        secret=secret,
        min_password=accounts.MIN_PASSWORD,
    )


def _active_departments(desk: Desk) -> list[tuple[str, str]]:
    return [
        (code, name)
        for code, name in desk.db.execute(
            select(Department.code, Department.name)
            .where(Department.active.is_(True))
            .order_by(Department.code)
        )
    ]


def add_user(desk: Desk) -> Response:
    typed = {k: desk.field(k) for k in ("username", "name", "role", "department")}
    password = _password(desk, "password")
    department = typed["department"] if typed["role"] == "department" else None
    problem = ""
    if not USERNAME.fullmatch(typed["username"]):
        problem = "用户名须为 2 至 64 位字母、数字、点、横线或下划线，并以字母或数字开头。"
    elif not typed["name"] or len(typed["name"]) > 100:
        problem = "请填写姓名（不超过 100 字）。"
    elif typed["role"] not in ROLES:
        problem = "请选择角色。"
    elif typed["role"] == "department" and not department:
        problem = "承办单位的用户须选择所属单位。"
    elif department and department not in dict(_active_departments(desk)):
        problem = "没有这个单位，或该单位已停用。"
    elif desk.db.scalar(select(ConsoleUser.id).where(ConsoleUser.username == typed["username"])):
        problem = "该用户名已被使用。"
    elif password != _password(desk, "password2"):
        problem = "两次输入的密码不一致。"
    if not problem:
        try:
            accounts.add_user(
                desk.db,
                typed["username"],
                typed["name"],
                typed["role"],
                password,
                desk.now,
                department,
            )
        except AccountError as exc:
            problem = _chinese(exc)
    if problem:
        return users(desk, 400, problem, typed)
    _record(
        desk,
        "console.user_added",
        username=typed["username"],
        role=typed["role"],
        department=department,
    )
    return _back(desk, "users", "added", typed["username"])


def _chinese(exc: AccountError) -> str:
    """accounts' messages for a person at the console (its password rule is Chinese)."""
    text = str(exc)
    if "exists" in text:
        return "该用户名已被使用。"
    if "department" in text:
        return "承办单位的用户须选择所属单位，其他角色不属于任何单位。"
    if "role" in text:
        return "请选择角色。"
    return text if re.search(r"[\u4e00-\u9fff]", text) else f"无法保存：{text}"


def user_action(desk: Desk) -> Response:
    user = desk.db.get(ConsoleUser, desk.request.path_params["user_id"])
    action = desk.request.path_params["action"]
    if user is None or action not in {"disable", "enable", "unlock", "password"}:
        raise NotFound
    who = {"username": user.username}
    if action == "disable":
        if user.id == desk.staff.user_id:
            return users(desk, 400, "不能停用自己的账号。")
        user.active = False
        accounts.end_sessions(desk.db, user.id, desk.now)
        _record(desk, "console.user_disabled", **who)
        return _back(desk, "users", "disabled", user.username)
    if action == "enable":
        user.active = True
        _record(desk, "console.user_enabled", **who)
        return _back(desk, "users", "enabled", user.username)
    if action == "unlock":
        user.failed_logins, user.locked_until = 0, None
        _record(desk, "console.user_unlocked", **who)
        return _back(desk, "users", "unlocked", user.username)
    password = _password(desk, "password")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(12)  # 16 characters, 96 bits
    elif password != _password(desk, "password2"):
        return users(desk, 400, f"{user.username}：两次输入的密码不一致。")
    try:
        accounts.set_password(desk.db, user, password, desk.now)
    except AccountError as exc:
        return users(desk, 400, f"{user.username}：{_chinese(exc)}")
    _record(desk, "console.password_reset", generated=generated, **who)
    if generated:
        # Shown on this answer only (never in a URL, a log line or an event).
        return users(desk, secret=(user.username, password))
    return _back(desk, "users", "password", user.username)


# -- departments --------------------------------------------------------------------------


def departments(
    desk: Desk, status: int = 200, problem: str = "", typed: dict[str, str] | None = None
) -> Response:
    configured = {d.code: d for d in desk.tools.workflow.routing.departments}
    stored = {d.code: d for d in desk.db.scalars(select(Department))}
    rows = []
    for code in sorted(configured.keys() | stored.keys()):
        config, row = configured.get(code), stored.get(code)
        contacts = list(row.contacts) if row else []
        rows.append(
            {
                "code": code,
                "name": row.name if row else config.name if config else code,
                "configured": config is not None,
                "stored": row is not None,
                "active": bool(row and row.active),
                "contacts": contacts,
                "config_contacts": list(config.contacts) if config else [],
                "differs": row is not None
                and (
                    config is None
                    or contacts != list(config.contacts)
                    or row.active != (config is not None)
                ),
            }
        )
    return desk.render(
        "admin_departments.html",
        status,
        departments=rows,
        problem=problem,
        notice=_done(desk) if status == 200 else "",
        typed=typed or {},
    )


def edit_department(desk: Desk) -> Response:
    code = desk.request.path_params["code"]
    row = desk.db.scalars(select(Department).where(Department.code == code)).one_or_none()
    if row is None:
        raise NotFound
    text = desk.field("contacts")
    active = desk.field("active") == "1"
    contacts = [c for c in re.split(r"[\s,;，；、]+", text) if c]
    typed = {"code": code, "contacts": text}
    bad = [c for c in contacts if not EMAIL.fullmatch(c) or len(c) > 254]
    configured = {d.code for d in desk.tools.workflow.routing.departments}
    if bad:
        return departments(desk, 400, f"{code}：不是电子邮件地址：{'、'.join(bad[:3])}", typed)
    if len(contacts) > MAX_CONTACTS:
        return departments(desk, 400, f"{code}：通知联系人最多 {MAX_CONTACTS} 个。", typed)
    if active and code not in configured:
        return departments(
            desk, 400, f"{code}：配置文件中没有这个单位，不能启用（单位以配置文件为准）。", typed
        )
    row.contacts = list(dict.fromkeys(contacts))
    row.active = active
    _record(desk, "console.department_changed", code=code, active=active, contacts=row.contacts)
    return _back(desk, "departments", "department", row.name)


def sync_departments(desk: Desk) -> Response:
    desk.tools.workflow.sync_departments(desk.db)
    _record(desk, "console.departments_synced")
    return _back(desk, "departments", "synced", "")


# -- API tokens ---------------------------------------------------------------------------


def tokens(
    desk: Desk,
    status: int = 200,
    problem: str = "",
    typed: dict[str, Any] | None = None,
    secret: tuple[str, str] | None = None,
) -> Response:
    return desk.render(
        "admin_tokens.html",
        status,
        tokens=desk.db.scalars(select(ApiToken).order_by(ApiToken.id.desc())).all(),
        configured=desk.tools.config.api.tokens,
        scopes=SCOPE_LABELS,
        departments=_active_departments(desk),
        problem=problem,
        notice=_done(desk) if status == 200 and not secret else "",
        typed=typed or {"scopes": ["read"]},
        secret=secret,
    )


def create_token(desk: Desk) -> Response:
    name, department = desk.field("name"), desk.field("department") or None
    scopes = desk.fields("scope")
    typed: dict[str, Any] = {"name": name, "department": department or "", "scopes": scopes}
    problem = ""
    if not name or len(name) > 100:
        problem = "请填写令牌名称（不超过 100 字），如对接系统的名字。"
    elif not scopes or not set(scopes) <= set(auth.SCOPES):
        problem = "请至少选择一项权限。"
    elif department and department not in dict(_active_departments(desk)):
        problem = "没有这个单位，或该单位已停用。"
    if problem:
        return tokens(desk, 400, problem, typed)
    token = auth.create(desk.db, name, scopes, department, desk.now)
    _record(
        desk, "console.token_created", name=name, scopes=sorted(set(scopes)), department=department
    )
    # The token itself is on this answer only; the table keeps its SHA-256.
    return tokens(desk, secret=(name, token))


def revoke_token(desk: Desk) -> Response:
    row = desk.db.get(ApiToken, desk.request.path_params["token_id"])
    if row is None:
        raise NotFound
    if row.revoked_at is None:
        row.revoked_at = desk.now
        _record(desk, "console.token_revoked", name=row.name)
    return _back(desk, "tokens", "revoked", row.name)


# -- the audit log ------------------------------------------------------------------------


PAGES = (
    ("/admin/users", ["GET"], "admin", users),
    ("/admin/users", ["POST"], "admin", add_user),
    ("/admin/users/{user_id:row}/{action}", ["POST"], "admin", user_action),
    ("/admin/departments", ["GET"], "admin", departments),
    ("/admin/departments/sync", ["POST"], "admin", sync_departments),
    ("/admin/departments/{code}", ["POST"], "admin", edit_department),
    ("/admin/tokens", ["GET"], "admin", tokens),
    ("/admin/tokens", ["POST"], "admin", create_token),
    ("/admin/tokens/{token_id:row}/revoke", ["POST"], "admin", revoke_token),
)
