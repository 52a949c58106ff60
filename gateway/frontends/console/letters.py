"""The letter pages: the triage inbox, one letter with its files and history, revealing the
citizen's details (with a reason, audited), and every routing-core action as a form."""

from __future__ import annotations

import argparse
import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, or_, select
from sqlalchemy.orm import selectinload
from starlette.responses import Response

from gateway.contract.contact import CALL_RECORDING
from gateway.contract.labels import (
    CATEGORY_LABELS,
    CHANNEL_LABELS,
    REJECTION_LABELS,
    STATUS_LABELS,
)
from gateway.contract.logs import log_event
from gateway.contract.redaction import scrub
from gateway.core.access import (
    Sight,
    citizen_view,
    file_shown,
    scrub_detail,
    sight,
    visible_to,
    words,
)
from gateway.core.actions import ACTIONS
from gateway.core.views import SUMMARY_COLUMNS
from gateway.core.workflow import TRANSITIONS, WorkflowError
from gateway.frontends.console.desk import HEADERS, Desk, NotFound
from gateway.frontends.console.ids import row_id
from gateway.frontends.console.scope import PII_READS, find_letter, may, viewer
from store.letters import record_event
from store.models import Assignment, Department, Letter, Reply

log = logging.getLogger(__name__)
NEW = ("received", "triage")
# The citizen as the letter page shows them.
CITIZEN = ("name", "phone", "email", "id_number", "address")
# The workflow's action names -> the verbs of gateway/core/actions.py that carry them out.
VERBS = {
    "reply_interim": "reply",
    "reply_final": "reply",
    "request_extension": "extend",
    "decide_extension": "decide-extension",
}
# Verbs whose form must carry words, and what to ask for when they are missing.
NEEDS_TEXT = {
    "answer": "text",
    "reply": "text",
    "opinion": "text",
    "instruct": "text",
    "return": "reason",
    "extend": "reason",
    "reject": "reason",
}


def inbox(desk: Desk) -> Response:
    """New letters by channel, with filters and search; newest first, paged by id."""
    page_size = desk.tools.config.console.page_size
    channel, category, status, q = (desk.query(k) for k in ("channel", "category", "status", "q"))
    before = row_id(desk.query("before"))
    statuses = [status] if status in STATUS_LABELS else list(NEW) if status != "all" else None
    where = [visible_to(viewer(desk.staff))]
    if statuses is not None:
        where.append(Letter.status.in_(statuses))
    if category:
        where.append(Letter.category == category)
    if q:
        where.append(or_(Letter.tracking_number == q, Letter.subject.contains(q, autoescape=True)))
    # Grouped by an expression: with statistics (ANALYZE), SQLite would walk the channel
    # index of every letter for the group order instead of taking the new ones by status.
    channel_of = (Letter.channel + literal_column("''")).label("channel")
    counts = {
        row.channel: row.count
        for row in desk.db.execute(
            select(channel_of, func.count().label("count")).where(*where).group_by(channel_of)
        )
    }
    if channel:
        where.append(Letter.channel == channel)
    if before is not None:
        where.append(Letter.id < before)
    rows = desk.db.execute(
        select(*SUMMARY_COLUMNS).where(*where).order_by(Letter.id.desc()).limit(page_size + 1)
    ).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    return desk.render(
        "inbox.html",
        rows=[(row, scrub(row.subject or "")) for row in rows],
        counts=counts,
        filters={"channel": channel, "category": category, "status": status, "q": q},
        next_before=rows[-1].id if more and rows else None,
    )


def letter_page(
    desk: Desk, revealed: bool = False, problem: str = "", status: int = 200
) -> Response:
    staff, db = desk.staff, desk.db
    letter = _letter(desk)
    citizen = letter.citizen
    reader = viewer(staff, revealed)
    seen = sight(letter, reader)
    clean = words(letter, citizen, seen)
    assignments = db.scalars(
        select(Assignment)
        .where(Assignment.letter_id == letter.id)
        .options(selectinload(Assignment.department))
        .order_by(Assignment.id)
    ).all()
    replies = db.scalars(select(Reply).where(Reply.letter_id == letter.id).order_by(Reply.id)).all()
    # Who read the citizen is the hotline centre's own record, not a department's.
    events = [
        (event, scrub_detail(event.detail, clean))
        for event in letter.events
        if reader.centre or event.kind not in PII_READS
    ]
    files = [a for a in letter.attachments if file_shown(letter, a.media_type, reader)]
    actions = available(desk, letter)
    departments = db.execute(
        select(Department.code, Department.name)
        .where(Department.active.is_(True))
        .order_by(Department.id)
    ).all()
    return desk.render(
        "letter.html",
        status=status,
        letter=letter,
        clean=clean,
        citizen=citizen_view(citizen, seen, CITIZEN),
        masked=seen is Sight.MASKED,
        withheld=seen is Sight.WITHHELD,
        assignments=assignments,
        replies=replies,
        events=events,
        audio=[a for a in files if _voice(a.media_type)],
        images=[a for a in files if a.media_type.startswith("image/")],
        others=[
            a for a in files if not _voice(a.media_type) and not a.media_type.startswith("image/")
        ],
        countdown=countdown(desk, letter.due_at),
        actions=actions,
        departments=departments,
        problem=problem,
        done=desk.query("done"),
        can_reveal=may(staff, "reveal") and citizen is not None and not revealed,
        revealed=revealed,
        history=history,
        due_if={
            kind: desk.tools.workflow.deadline(letter, kind, desk.now)
            for kind in ("time_limited", "promised", "joint", "urgent")
        }
        if "assign" in actions or "instruct" in actions
        else {},
    )


# What the history shows of an event's detail, in staff's words; other keys stay out.
DETAIL_LABELS = {
    "reason": "理由",
    "note": "说明",
    "instruction": "批示",
    "category": "类别",
    "old": "原类别",
    "new": "新类别",
    "original": "原信件",
    "reply_type": "答复类型",
    "due_at": "期限",
    "lead": "牵头",
    "approved": "同意",
    "satisfaction": "满意度",
    "satisfied": "满意",
    "visited": "回访信件",
    "answer": "答复来信",
    "by": "答复渠道",
    "public": "可选登",
    "reply": "答复",
}


VALUE_LABELS = {
    "final": "办理结果",
    "interim": "阶段性答复",
    "time_limited": "限时件",
    "promised": "承诺件",
    "joint": "会签件",
    "urgent": "紧急件",
    "satisfied": "满意",
    "mostly_satisfied": "基本满意",
    "unsatisfied": "不满意",
    **CATEGORY_LABELS,
    **REJECTION_LABELS,
    **CHANNEL_LABELS,
}


def history(detail: dict[str, Any], local: Any) -> list[tuple[str, str]]:
    """An event's detail as label and text: dates in the city's time, yes/no in Chinese."""
    shown = []
    for key, label in DETAIL_LABELS.items():
        value = detail.get(key)
        if value is None or value == "":
            continue
        if key == "satisfied" and "satisfaction" in detail:
            continue  # says only whether it closed; the satisfaction says how (基本满意)
        if isinstance(value, bool):
            text = "是" if value else "否"
        elif key == "due_at":
            text = local(datetime.fromisoformat(value))
        else:
            text = VALUE_LABELS.get(str(value), str(value))
        shown.append((label, text))
    return shown


def _letter(desk: Desk) -> Letter:
    letter = find_letter(desk.db, desk.staff, desk.request.path_params["number"])
    if letter is None:
        raise NotFound
    return letter


def _voice(media_type: str) -> bool:
    return media_type.startswith("audio/")


def available(desk: Desk, letter: Letter) -> set[str]:
    """The verbs this person may take on this letter now (the workflow still decides)."""
    verbs = {
        VERBS.get(action, action)
        for (state, action), (_, roles) in TRANSITIONS.items()
        if state == letter.status and desk.staff.role in roles and action != "process"
    }
    asked = [e.kind for e in letter.events if e.kind.startswith("extension_")]
    if not asked or asked[-1] != "extension_requested":
        verbs.discard("decide-extension")  # nothing asked, or already decided
    return verbs


def countdown(desk: Desk, due: datetime | None) -> dict[str, Any] | None:
    """The deadline in working days (or hours on its last day), and how urgent it looks."""
    if due is None:
        return None
    calendar, now = desk.tools.workflow.calendar, desk.now
    if due <= now:
        days = calendar.working_days_between(due, now)
        text = f"已超期 {days} 个工作日" if days else "已超期"
        return {"text": text, "state": "overdue"}
    warn = timedelta(hours=desk.tools.config.deadlines.warn_before_hours)
    days = calendar.working_days_between(now, due)
    text = (
        f"剩余 {days} 个工作日" if days else f"剩余 {int((due - now).total_seconds() // 3600)} 小时"
    )
    return {"text": text, "state": "soon" if due - now <= warn else ""}


def letter_file(desk: Desk) -> Response:
    letter = _letter(desk)
    wanted = desk.request.path_params["file_id"]
    found = next((a for a in letter.attachments if a.id == wanted), None)
    if found is None or not file_shown(letter, found.media_type, viewer(desk.staff)):
        raise NotFound
    if found.filename == CALL_RECORDING:
        # A recording of the citizen's call is their personal data: each hearing is audited.
        actor = f"console:{desk.staff.username}"
        kind = "recording_played"
        record_event(desk.db, at=desk.now, actor=actor, kind=kind, letter=letter, file=found.id)
        desk.db.flush()  # on record before the recording leaves
    shown = (
        found.media_type.startswith(("image/", "audio/")) or found.media_type == "application/pdf"
    )
    disposition = "inline" if shown else "attachment"
    return Response(
        desk.tools.files.read(found.sha256),
        media_type=found.media_type,
        headers={
            **HEADERS,
            # A file is never a page of ours: no script in it runs with the console's rights.
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Content-Disposition": f'{disposition}; filename="file-{found.id}"',
        },
    )


def reveal(desk: Desk) -> Response:
    """The citizen's full details, once, for a stated reason that goes to the audit log."""
    letter = _letter(desk)
    reason = desk.field("reason")
    if len(reason) < 4:
        return letter_page(desk, problem="查看来信人信息须填写理由（至少4个字）。", status=400)
    record_event(
        desk.db,
        at=desk.now,
        actor=f"console:{desk.staff.username}",
        kind="pii.revealed",
        letter=letter,
        reason=reason[:500],
    )
    desk.db.flush()  # on record before the details leave
    log_event(log, "console.pii_revealed", letter=letter.tracking_number, user=desk.staff.username)
    return letter_page(desk, revealed=True)


def act(desk: Desk) -> Response:
    letter = _letter(desk)
    verb = desk.field("action")
    if verb not in ACTIONS or verb not in available(desk, letter):
        return letter_page(desk, problem="此信件当前状态下不能进行该操作。", status=409)
    needed = NEEDS_TEXT.get(verb)
    if needed and not desk.field(needed):
        return letter_page(desk, problem="请填写内容或理由。", status=400)
    try:
        arguments = _arguments(desk)
    except ValueError:
        return letter_page(desk, problem="日期格式不正确，请按 年-月-日 填写。", status=400)
    try:
        ACTIONS[verb](desk.tools.workflow, desk.db, letter, arguments, desk.actor)
    except WorkflowError as exc:
        desk.db.rollback()
        return letter_page(desk, problem=f"操作未完成：{exc.chinese}。", status=409)
    return desk.see_other(f"/console/letters/{letter.tracking_number}?done={verb}")


def _arguments(desk: Desk) -> argparse.Namespace:
    promised = desk.field("promised_at")
    return argparse.Namespace(
        text=desk.field("text"),
        reason=desk.field("reason"),
        category=desk.field("category"),
        department=list(dict.fromkeys(desk.fields("department"))),  # the lead first, once
        reply_type=desk.field("reply_type") or "time_limited",
        public=desk.field("public") == "yes",
        interim=desk.field("kind") == "interim",
        promised_at=_end_of_day(desk, date.fromisoformat(promised)) if promised else None,
        approve=desk.field("approve") != "no",
        satisfied=True,
        satisfaction=desk.field("satisfaction") or None,
    )


def _end_of_day(desk: Desk, day: date) -> datetime:
    """A promised completion date means the end of that working day, in the city's time."""
    config = desk.tools.config
    return datetime.combine(day, config.deadlines.day_end, tzinfo=config.zone)


PAGES = (
    ("/inbox", ["GET"], "inbox", inbox),
    ("/letters/{number}", ["GET"], "letter", letter_page),
    ("/letters/{number}/files/{file_id:row}", ["GET"], "letter", letter_file),
    ("/letters/{number}/reveal", ["POST"], "reveal", reveal),
    ("/letters/{number}/act", ["POST"], "letter", act),
)
