"""坐席账号: the administrator's page for operators' phone seats, beside the console's users.

Every change goes through gateway/core/seats.py (which audits it), as `hotline seats` does.
A SIP password made there is on the one answer that made it: never in a URL, a redirect, a
log line or an event; the seats table keeps only its HA1.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import select
from starlette.responses import Response

from gateway.core import seats
from gateway.frontends.console.desk import Desk, NotFound
from gateway.frontends.console.desk_call import kamailio_registrar
from gateway.frontends.console.desk_page import STATE_LABELS
from store.models import ConsoleUser

DONE = {"removed": "已删除坐席"}
# gateway/core/seats.py's refusals (English, for the CLI) -> what an administrator reads.
# "exists" last: every other key holds a space, which no name can, so no name passes for it.
REFUSALS = (
    ("seat name", "坐席名须为 1 至 32 位数字、小写字母、点、横线或下划线，并以数字或字母开头。"),
    ("already has seat", "该话务员已有坐席，每人只能有一个。"),
    ("is disabled", "该用户已停用，不能开通坐席。"),
    ("not an operator", "只有话务员可以开通坐席。"),
    ("no console user", "没有这个用户。"),
    ("exists", "该坐席名已被使用。"),
)


def _actor(desk: Desk) -> str:
    return f"console:{desk.staff.username}"


def seats_page(
    desk: Desk,
    status: int = 200,
    problem: str = "",
    typed: dict[str, str] | None = None,
    secret: tuple[str, str, str] | None = None,
) -> Response:
    """``secret``: (seat, realm, password) just made, shown on this answer only."""
    rows = seats.list_seats(desk.db)
    registered = kamailio_registrar(desk.tools.config)() if rows else None
    taken = {seat.user_id for seat in rows}
    operators = [
        (user.username, user.display_name)
        for user in desk.db.scalars(
            select(ConsoleUser)
            .where(ConsoleUser.role == seats.OPERATOR, ConsoleUser.active.is_(True))
            .order_by(ConsoleUser.username)
        )
        if user.id not in taken
    ]
    done = DONE.get(desk.query("done"), "")
    return desk.render(
        "admin_seats.html",
        status,
        seats=rows,
        registered=registered,
        state_labels=STATE_LABELS,
        operators=operators,
        problem=problem,
        notice=f"{done}：{desk.query('what')}" if done and status == 200 and not secret else "",
        typed=typed or {},
        secret=secret,
    )


def add_seat(desk: Desk) -> Response:
    typed = {"username": desk.field("username"), "user": desk.field("user")}
    try:
        made = seats.add(
            desk.db,
            typed["username"],
            typed["user"],
            desk.tools.config.seats,
            now=desk.now,
            actor=_actor(desk),
        )
    except (seats.SeatRefused, seats.SeatNotFound) as exc:
        desk.db.rollback()
        return seats_page(desk, 400, _chinese(exc), typed)
    return _shown_once(desk, made)


def reset_password(desk: Desk) -> Response:
    try:
        made = seats.reset_password(
            desk.db, _named(desk), desk.tools.config.seats, now=desk.now, actor=_actor(desk)
        )
    except seats.SeatNotFound:
        raise NotFound from None
    return _shown_once(desk, made)


def remove_seat(desk: Desk) -> Response:
    username = _named(desk)
    try:
        seats.remove(desk.db, username, now=desk.now, actor=_actor(desk))
    except seats.SeatNotFound:
        raise NotFound from None
    query = urlencode({"done": "removed", "what": username})
    return desk.see_other(f"/console/admin/seats?{query}")


def _named(desk: Desk) -> str:
    return str(desk.request.path_params["seat"])


def _shown_once(desk: Desk, made: seats.NewPassword) -> Response:
    # Flushed first: the page shows the seat as stored, and a password that works.
    desk.db.flush()
    return seats_page(desk, secret=(made.seat.username, made.seat.realm, made.password))


def _chinese(exc: Exception) -> str:
    text = str(exc)
    return next((said for key, said in REFUSALS if key in text), "无法开通坐席，请检查填写。")


PAGES = (
    ("/admin/seats", ["GET"], "seats", seats_page),
    ("/admin/seats", ["POST"], "seats", add_seat),
    ("/admin/seats/{seat}/password", ["POST"], "seats", reset_password),
    ("/admin/seats/{seat}/remove", ["POST"], "seats", remove_seat),
)
