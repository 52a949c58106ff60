"""坐席工作台: the operator's call desk. Their seat's state (签入/小休/签出, through
gateway/core/seats.py and audited there), whether the phone is registered, and the screen
pop: the call ringing or talking at the seat, the caller's number as the role may see it,
their earlier letters and the call's own letter, with the way to record and handle it.

The page is whole when served; desk_events.py then keeps its panel current without reload.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from gateway.core import seats
from gateway.frontends.console.desk import Desk
from gateway.frontends.console.desk_call import (
    RECORDABLE,
    SeatView,
    kamailio_registrar,
    last_answered,
    queue_for,
    seat_of,
    seat_view,
)

PANEL = "_desk_panel.html"
# The buttons, in the order they stand: the seats table's state -> what the operator reads.
STATES = {"available": "签入", "on_break": "小休", "signed_out": "签出"}
STATE_LABELS = {"available": "已签入", "on_break": "小休", "signed_out": "已签出"}


def panel_context(view: SeatView, problem: str = "") -> dict[str, Any]:
    """What the panel template reads besides the signed-in person (``staff``, ``may``), for
    the page and for each event of its stream."""
    return {
        "view": view,
        "buttons": STATES,
        "state_labels": STATE_LABELS,
        "recordable": RECORDABLE,
        "problem": problem,
    }


def current_view(desk: Desk) -> SeatView:
    tools = desk.tools
    snapshot = queue_for(tools.config, tools.writes, lambda: desk.now).snapshot()
    seat = seat_of(desk.db, desk.staff)
    registered = kamailio_registrar(tools.config)() if seat is not None else None

    def ended(seat: str) -> str | None:
        return last_answered(desk.db, seat, desk.now)

    return seat_view(desk.db, desk.staff, snapshot, registered, desk.now, ended)


# The softphone's page talks to Kamailio's WebSocket and plays the call.
SOFTPHONE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def desk_page(desk: Desk, problem: str = "", status: int = 200) -> Response:
    view = current_view(desk)
    phone = softphone(desk)
    response = desk.render("desk.html", status, softphone=phone, **panel_context(view, problem))
    if phone is not None:
        response.headers["Content-Security-Policy"] = SOFTPHONE_CSP
    return response


def softphone(desk: Desk) -> dict[str, str] | None:
    """With web calls on, the desk is the seat's phone too (JsSIP over Kamailio's
    WebSocket): what it registers with. The seat's digest HA1, not a password, goes to the
    operator's own page only, which is never cached; it is what the registrar checks."""
    webcall = desk.tools.config.channels.sip.webcall
    seat = seat_of(desk.db, desk.staff)
    if not webcall.enabled or seat is None:
        return None
    return {
        "seat": seat.username,
        "realm": seat.realm,
        "ha1": seat.ha1,
        "ws_url": webcall.ws_url,
        "ws_port": str(webcall.ws_port),
    }


def change_state(desk: Desk) -> Response:
    """The operator's own seat only: the form names a state, never a seat."""
    wanted = desk.field("state")
    seat = seat_of(desk.db, desk.staff)
    if seat is None:
        return desk_page(desk, "您还没有坐席，请联系管理员开通。", 409)
    if wanted not in STATES:
        return desk_page(desk, "未知的坐席状态。", 400)
    try:
        seats.set_state(
            desk.db, seat.username, wanted, now=desk.now, actor=f"console:{desk.staff.username}"
        )
    except seats.SeatRefused:
        desk.db.rollback()
        return desk_page(desk, "坐席状态未能更改，请联系管理员。", 409)
    return desk.see_other("/console/desk")


PAGES = (
    ("/desk", ["GET"], "desk", desk_page),
    ("/desk/state", ["POST"], "desk", change_state),
)
