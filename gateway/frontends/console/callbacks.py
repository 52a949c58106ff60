"""漏接回拨: callers who hung up before leaving a message. The operator sees the list with
numbers masked, takes one call back (the full number is shown for it alone and the reveal
goes to the audit log), and marks it called back."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.responses import Response

from gateway.contract.redaction import mask_phone
from gateway.frontends.console.desk import Desk, NotFound
from store.letters import record_event
from store.models import MissedCall

REASONS = {
    "hung_up_before_answer": "接通前挂断",
    "hung_up_in_menu": "语音菜单中挂断",
    "hung_up_in_transfer": "转人工时挂断",
    "short_recording": "留言过短",
    "abandoned": "排队时挂断",
    "queue_timeout": "排队超时，预约回电",
    "lost": "排队时线路中断",
}


def missed_calls(desk: Desk, calling: int | None = None) -> Response:
    done = desk.query("tab") == "done"
    rows = desk.db.scalars(
        select(MissedCall)
        .where(
            MissedCall.called_back_at.is_not(None) if done else MissedCall.called_back_at.is_(None)
        )
        .options(selectinload(MissedCall.citizen))
        .order_by(MissedCall.at.desc(), MissedCall.id.desc())
        .limit(desk.tools.config.console.page_size)
    ).all()
    shown = [
        {
            "id": row.id,
            "at": row.at,
            "reason": REASONS.get(row.reason, row.reason),
            "called": row.called,
            "caller": (row.citizen.phone if row.id == calling else mask_phone(row.citizen.phone))
            if row.citizen
            else None,
            "calling": row.id == calling,
            "called_back_at": row.called_back_at,
            "called_back_by": row.called_back_by,
        }
        for row in rows
    ]
    return desk.render("missed_calls.html", rows=shown, done=done)


def _missed(desk: Desk) -> MissedCall:
    found = desk.db.get(MissedCall, desk.request.path_params["call_id"])
    if found is None:
        raise NotFound
    return found


def call_back(desk: Desk) -> Response:
    """The number of one missed call, for calling it back: on record before it is shown."""
    missed = _missed(desk)
    record_event(
        desk.db,
        at=desk.now,
        actor=f"console:{desk.staff.username}",
        kind="pii.revealed",
        reason="漏接回拨",
        missed_call=missed.id,
    )
    desk.db.flush()
    return missed_calls(desk, calling=missed.id)


def called_back(desk: Desk) -> Response:
    missed = _missed(desk)
    if missed.called_back_at is None:
        missed.called_back_at, missed.called_back_by = desk.now, desk.staff.username
    return desk.see_other("/console/missed-calls")


PAGES = (
    ("/missed-calls", ["GET"], "callbacks", missed_calls),
    ("/missed-calls/{call_id:row}/call", ["POST"], "callbacks", call_back),
    ("/missed-calls/{call_id:row}/done", ["POST"], "callbacks", called_back),
)
