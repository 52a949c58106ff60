"""The audit log for the administrator: sign-ins, every change made in the console, and
every read of a citizen's details (console reveals, API and CLI reads), with the reason.
It shows only a fixed list of detail keys: it must never become a way to read PII."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import or_, select
from starlette.responses import Response

from gateway.frontends.console.admin import ROLE_LABELS, SCOPE_LABELS
from gateway.frontends.console.desk import Desk
from gateway.frontends.console.ids import row_id
from gateway.frontends.console.scope import PII_READS
from store.models import Event, Letter

AUDIT_LABELS = {
    "console.signed_in": "登录",
    "console.sign_in_failed": "登录失败",
    "console.locked": "账号锁定",
    "console.user_added": "添加用户",
    "console.user_disabled": "停用用户",
    "console.user_enabled": "启用用户",
    "console.user_unlocked": "解除锁定",
    "console.password_reset": "重置密码",
    "console.department_changed": "修改单位",
    "console.departments_synced": "按配置同步单位",
    "console.token_created": "创建接口令牌",
    "console.token_revoked": "吊销接口令牌",
    "console.bulletin_exported": "导出通报",
    "console.seat_added": "添加坐席",
    "console.seat_password_reset": "重置坐席密码",
    "console.seat_removed": "删除坐席",
    "console.seat_state_changed": "坐席状态变更",
    "console.seat_not_answering": "坐席未接听来电（暂停派单）",
    "pii.revealed": "查看来信人信息",
    "pii_read": "读取来信人信息（接口、命令行或推送）",
}
# The detail keys the audit page shows, and how it names them. Anything else an event
# carries stays off the page: the log must never become a way to read citizens' data.
DETAIL_LABELS = {
    "username": "用户",
    "role": "角色",
    "department": "单位",
    "code": "单位",
    "active": "启用",
    "contacts": "通知联系人",
    "generated": "临时密码",
    "name": "令牌名称",
    "scopes": "权限",
    "outcome": "结果",
    "ip": "IP",
    "reason": "理由",
    "format": "格式",
    "period": "时段",
    "seat": "坐席",
    "state": "状态",
}
OUTCOMES = {"ok": "成功", "wrong": "用户名或密码错误", "locked": "已锁定", "disabled": "已停用"}


def audit(desk: Desk) -> Response:
    """Who did what when, newest first, paged by id (a page never shifts as events arrive)."""
    zone = desk.tools.config.zone
    filters = {k: desk.query(k) for k in ("kind", "actor", "from", "to")}
    before = row_id(desk.query("before"))
    kind = filters["kind"]
    if kind and not (kind.startswith("console.") or kind in PII_READS):
        kind = filters["kind"] = ""
    query = select(
        Event.id, Event.at, Event.actor, Event.kind, Event.detail, Letter.tracking_number
    ).outerjoin(Letter, Letter.id == Event.letter_id)
    if kind:
        query = query.where(Event.kind == kind)
    else:
        query = query.where(
            or_(Event.kind.startswith("console.", autoescape=True), Event.kind.in_(PII_READS))
        )
    if filters["actor"]:
        query = query.where(Event.actor.contains(filters["actor"], autoescape=True))
    problem = ""
    for key, bound in (("from", 0), ("to", 1)):
        if not filters[key]:
            continue
        try:
            day = date.fromisoformat(filters[key]) + timedelta(days=bound)
        except ValueError:
            problem, filters[key] = "日期格式应为 年-月-日。", ""
            continue
        moment = datetime.combine(day, time(), zone).astimezone(UTC)
        query = query.where(Event.at >= moment if key == "from" else Event.at < moment)
    if before is not None:
        query = query.where(Event.id < before)
    size = desk.tools.config.console.page_size
    rows = desk.db.execute(query.order_by(Event.id.desc()).limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    entries = [
        {
            "id": id_,
            "at": at,
            "actor": actor,
            "kind": kind_,
            "what": AUDIT_LABELS.get(kind_, kind_),
            "letter": number,
            "detail": _shown(detail or {}),
        }
        for id_, at, actor, kind_, detail, number in rows
    ]
    following = {k: v for k, v in filters.items() if v}
    return desk.render(
        "audit.html",
        400 if problem else 200,
        entries=entries,
        kinds=AUDIT_LABELS,
        filters=filters,
        problem=problem,
        next_page=urlencode({**following, "before": rows[-1][0]}) if more else "",
        first_page=urlencode(following) if before is not None else None,
    )


def _shown(detail: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for key, label in DETAIL_LABELS.items():
        if key not in detail or detail[key] is None:
            continue
        value = detail[key]
        if key == "outcome":
            text = OUTCOMES.get(str(value), str(value))
        elif key == "role":
            text = ROLE_LABELS.get(str(value), str(value))
        elif key == "scopes" and isinstance(value, list):
            text = "、".join(SCOPE_LABELS.get(str(s), str(s)) for s in value)
        elif isinstance(value, bool):
            text = "是" if value else "否"
        elif isinstance(value, list):
            text = "、".join(str(v) for v in value) or "（无）"
        else:
            text = str(value)
        shown.append((label, text[:300]))
    return shown


PAGES = (("/admin/audit", ["GET"], "admin", audit),)
