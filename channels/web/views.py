"""What the citizen's site shows of a letter: its own progress to the holder of its code,
and the published letters (选登) with every personal detail taken out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from gateway.contract import tracking
from gateway.contract.labels import CATEGORY_LABELS, CHANNEL_LABELS, STATUS_LABELS
from gateway.core.access import PUBLISHED, Sight, lead_assignment, words
from store.models import Department, Event, Letter, Reply

# The steps of a letter a citizen is told about; supervision and internal notes are not.
_STEPS = {
    "received": "来信已收到",
    "duplicate": "与已受理的诉求合并办理",
    "rejected": "不予受理",
    "assigned": "已转交 {department} 办理",
    "signed": "{department} 已签收",
    "replied": "{department} 已答复",
    "visited": "已回访",
    "reopened": "重新交办 {department}",
}


@dataclass(frozen=True)
class Step:
    at: datetime
    text: str


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def progress(
    session: Session, letter: Letter, zone: ZoneInfo, rejections: dict[str, str]
) -> dict[str, Any]:
    names: dict[int, str] = {
        i: n for i, n in session.execute(select(Department.id, Department.name))
    }
    steps = []
    for event in session.scalars(
        select(Event).where(Event.letter_id == letter.id).order_by(Event.id)
    ):
        template = _STEPS.get(event.kind)
        if template is None or (event.kind == "assigned" and not event.detail.get("lead")):
            continue
        department = names.get(event.department_id or 0, "有关部门")
        steps.append({"at": _local(event.at, zone), "text": template.format(department=department)})
    replies = session.scalars(
        select(Reply).where(Reply.letter_id == letter.id).order_by(Reply.id)
    ).all()
    lead = session.scalars(lead_assignment(letter.id)).first()
    due = lead.due_at if lead else None
    return {
        "number": letter.tracking_number,
        "status": STATUS_LABELS.get(letter.status, letter.status),
        "category": CATEGORY_LABELS.get(letter.category or "", "未分类"),
        "channel": CHANNEL_LABELS.get(letter.channel, letter.channel),
        "received": _local(letter.received_at, zone),
        "subject": letter.subject,
        "due": _local(due, zone) if letter.status in ("assigned", "signed", "promised") else "",
        "rejection": rejections.get(letter.rejection or "", "") if letter.rejection else "",
        "steps": steps,
        "replies": [
            {
                "kind": "阶段性答复" if r.kind == "interim" else "答复",
                "department": names.get(r.department_id or 0, "12345市民热线"),
                "at": _local(r.at, zone),
                "text": r.text,
            }
            for r in replies
        ],
    }


def published_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(*PUBLISHED)) or 0)


def published_page(session: Session, page: int, size: int, zone: ZoneInfo) -> list[dict[str, Any]]:
    letters = session.scalars(
        select(Letter)
        .where(*PUBLISHED)
        .options(selectinload(Letter.citizen))
        .order_by(Letter.replied_at.desc(), Letter.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    return [_public_view(session, letter, zone) for letter in letters]


def published_letter(session: Session, number: str, zone: ZoneInfo) -> dict[str, Any] | None:
    letter = session.scalars(
        select(Letter).where(*PUBLISHED, Letter.tracking_number == tracking.normalize(number))
    ).one_or_none()
    return _public_view(session, letter, zone) if letter is not None else None


def _public_view(session: Session, letter: Letter, zone: ZoneInfo) -> dict[str, Any]:
    # The public is never shown a citizen, nor their details in the letter's words.
    clean = words(letter, letter.citizen, Sight.WITHHELD)
    reply = session.execute(
        select(Reply.text, Department.name)
        .outerjoin(Department, Department.id == Reply.department_id)
        .where(Reply.letter_id == letter.id, Reply.kind == "final", Reply.public.is_(True))
        .order_by(Reply.id.desc())
    ).first()
    return {
        "number": letter.tracking_number,
        "category": CATEGORY_LABELS.get(letter.category or "", "未分类"),
        "subject": clean(letter.subject),
        "text": clean(letter.text),
        "received": _local(letter.received_at, zone)[:10],
        "replied": _local(letter.replied_at, zone)[:10],
        "department": (reply[1] if reply and reply[1] else "12345市民热线"),
        "reply": clean(reply[0]) if reply else "",
    }
