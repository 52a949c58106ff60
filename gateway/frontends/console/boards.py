"""Lists to work from: a department's own queue, the supervision board (due soon, overdue,
urged, supervised) and the letters waiting for their follow-up visit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from starlette.responses import Response

from gateway.contract.redaction import scrub
from gateway.core.workflow import OPEN_ASSIGNMENT
from gateway.frontends.console.desk import Desk
from gateway.frontends.console.letters import countdown
from store.models import Assignment, Chase, Department, Letter

QUEUE_TABS = {"open": OPEN_ASSIGNMENT, "replied": ("replied",), "returned": ("returned",)}


def _rows(desk: Desk, query: Row) -> list[dict[str, Any]]:
    """Assignments with their letters, as the tables show them (subjects scrubbed)."""
    found = desk.db.execute(query.limit(desk.tools.config.console.page_size)).all()
    return [
        {
            "number": row.tracking_number,
            "subject": scrub(row.subject or ""),
            "category": row.category,
            "department": row.name,
            "status": row.status,
            "due_at": row.due_at,
            "countdown": countdown(desk, row.due_at),
        }
        for row in found
    ]


# An assignment with its letter and department, as the boards list them.
Row = Select[str, str, str | None, str, str, datetime | None]


def _assignments() -> Row:
    return (
        select(
            Letter.tracking_number,
            Letter.subject,
            Letter.category,
            Department.name,
            Assignment.status,
            Assignment.due_at,
        )
        .join(Letter, Assignment.letter_id == Letter.id)
        .join(Department, Assignment.department_id == Department.id)
    )


def queue(desk: Desk) -> Response:
    """The clerk's own letters only: the query is bound to their department."""
    tab = desk.query("tab") if desk.query("tab") in QUEUE_TABS else "open"
    rows = _rows(
        desk,
        _assignments()
        .where(
            Assignment.department_id == desk.staff.department_id,
            Assignment.status.in_(QUEUE_TABS[tab]),
        )
        .order_by(Assignment.due_at.asc(), Assignment.id),
    )
    return desk.render("queue.html", rows=rows, tab=tab)


def supervision(desk: Desk) -> Response:
    now = desk.now
    soon = now + timedelta(hours=desk.tools.config.deadlines.warn_before_hours)
    open_ = _assignments().where(Assignment.status.in_(OPEN_ASSIGNMENT))

    def chased(kind: str) -> Row:
        return (
            open_.join(Chase, Chase.assignment_id == Assignment.id)
            .where(Chase.kind == kind)
            .order_by(Assignment.due_at)
        )

    boards = {
        "warning": _rows(
            desk,
            open_.where(Assignment.due_at > now, Assignment.due_at <= soon).order_by(
                Assignment.due_at
            ),
        ),
        "overdue": _rows(desk, open_.where(Assignment.due_at <= now).order_by(Assignment.due_at)),
        "urged": _rows(desk, chased("urge")),
        "supervised": _rows(desk, chased("supervise")),
    }
    return desk.render("supervision.html", boards=boards)


def follow_up(desk: Desk) -> Response:
    """回访: letters with a final reply and no visit yet, the longest waiting first."""
    found = desk.db.execute(
        select(Letter.tracking_number, Letter.subject, Letter.channel, Letter.replied_at)
        .where(Letter.status == "replied")
        .order_by(Letter.replied_at)
        .limit(desk.tools.config.console.page_size)
    ).all()
    rows = [
        {
            "number": r.tracking_number,
            "subject": scrub(r.subject or ""),
            "channel": r.channel,
            "replied_at": r.replied_at,
        }
        for r in found
    ]
    return desk.render("follow_up.html", rows=rows)


PAGES = (
    ("/queue", ["GET"], "queue", queue),
    ("/supervision", ["GET"], "supervision", supervision),
    ("/follow-up", ["GET"], "follow_up", follow_up),
)
