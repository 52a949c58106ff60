"""回访 asked of the citizen: after the final reply, by SMS to a mobile number or by e-mail
to a mail's sender, and given to an operator to call when nobody answers. Each step is
taken once per letter however many nodes sweep: a conditional UPDATE of its time claims it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from gateway.core.access import lead_assignment
from gateway.core.messages import queue_message
from gateway.core.workflow.base import Base
from gateway.core.workflow.citizen import SIGNATURE, sms_number
from gateway.core.workflow.transitions import SYSTEM, Actor
from store.models import Department, Letter

VISIT = Actor(SYSTEM, "visit")
# What the citizen answers; answers.py reads the same three.
OPTIONS = "1 满意，2 基本满意，3 不满意"


def sms_question(tracking_number: str) -> str:
    # Within two UCS2 parts (2 x 67 characters): a phone shows it as one message.
    return (
        f"{SIGNATURE}您的来信（编号{tracking_number}）已答复，请问您对办理结果是否满意？"
        f"请直接回复数字：{OPTIONS}。"
    )


def email_question(tracking_number: str) -> tuple[str, str]:
    subject = f"{SIGNATURE}回访：您对来信 {tracking_number} 的办理结果是否满意？"
    body = "\n".join(
        [
            "尊敬的市民：",
            "",
            f"您的来信（编号 {tracking_number}）已经答复。请问您对办理结果是否满意？",
            "",
            f"请直接回复本邮件，写上数字：{OPTIONS}。",
            "也欢迎写下您的意见，我们会认真阅读。",
            "",
            "12345市民热线",
        ]
    )
    return subject, body


def ask_visit(workflow: Base, session: Session, letter: Letter) -> None:
    """Called with the final reply: asks at once when config says so (ask_after_hours 0),
    else the sweep asks later."""
    if workflow.visits.enabled and workflow.visits.ask_after_hours == 0:
        now = workflow.clock()
        letter.visit_asked_at = now
        _ask(workflow, session, letter, now)


def sweep_visits(
    workflow: Base, session_factory: Callable[[], Any], now: datetime, batch: int = 500
) -> dict[str, int]:
    """Ask the replied letters whose delay has passed; give those unanswered for
    callback_after_days to an operator. Returns how many of each."""
    config = workflow.visits
    done = {"visit_asked": 0, "visit_unanswered": 0}
    if not config.enabled:
        return done
    waiting = Letter.status == "replied"
    due = now - timedelta(hours=config.ask_after_hours)
    to_ask = (Letter.visit_asked_at.is_(None), Letter.replied_at <= due)
    late = now - timedelta(days=config.callback_after_days)
    unanswered = (Letter.visit_asked_at <= late, Letter.visit_callback_at.is_(None))
    steps: list[tuple[str, Any, tuple[ColumnElement[bool], ...], Any]] = [
        ("visit_asked", Letter.visit_asked_at, to_ask, _ask),
        ("visit_unanswered", Letter.visit_callback_at, unanswered, _unanswered),
    ]
    for kind, column, condition, step in steps:
        while True:
            with session_factory() as session, session.begin():
                ids = list(
                    session.scalars(
                        select(Letter.id)
                        .where(waiting, *condition)
                        .order_by(Letter.id)
                        .limit(batch)
                    )
                )
                for id_ in ids:
                    # Claimed by the UPDATE: another node's sweep finds it taken (0 rows).
                    claimed = session.execute(
                        update(Letter)
                        .where(Letter.id == id_, waiting, column.is_(None))
                        .values({column.key: now})
                        .execution_options(synchronize_session=False)
                    )
                    if claimed.rowcount == 1:
                        letter = session.get(Letter, id_, populate_existing=True)
                        assert letter is not None
                        step(workflow, session, letter, now)
                        done[kind] += 1
            if len(ids) < batch:
                break
    return done


def _ask(workflow: Base, session: Session, letter: Letter, now: datetime) -> None:
    """By e-mail for a mail (or a citizen with no mobile), by SMS to a mobile (the one their
    receipt went to); a landline is an operator's call at once (an SMS to it is lost).
    Nobody left a contact: not asked."""
    citizen = letter.citizen
    number = letter.tracking_number
    mobile = sms_number(letter)
    if citizen is not None and citizen.email and (letter.channel == "email" or not mobile):
        subject, body = email_question(number)
        payload = {"subject": subject, "body": body}
        queue_message(session, "email", letter.id, citizen.email, payload, now)
        by = "email"
    elif mobile:
        queue_message(session, "sms", letter.id, mobile, {"body": sms_question(number)}, now)
        by = "sms"
    elif citizen is not None and citizen.phone:
        letter.visit_callback_at = now
        body = f"请电话回访来信人，询问对信件 {number} 的办理结果是否满意（满意/基本满意/不满意）。"
        queue_message(
            session, "callback", letter.id, citizen.phone, {"body": body}, now, deliver=False
        )
        by = "callback"
    else:
        letter.visit_callback_at = now  # nobody to ask, nobody to call
        return
    workflow._event(session, letter, VISIT, "visit_asked", _lead(session, letter), by=by)


def _unanswered(workflow: Base, session: Session, letter: Letter, now: datetime) -> None:
    citizen = letter.citizen
    if citizen is not None and citizen.phone:
        body = (
            f"回访未获答复：请电话询问来信人对信件 {letter.tracking_number} 的办理结果"
            "是否满意（满意/基本满意/不满意），并在系统中登记回访。"
        )
        queue_message(
            session, "callback", letter.id, citizen.phone, {"body": body}, now, deliver=False
        )
    workflow._event(session, letter, VISIT, "visit_unanswered", _lead(session, letter))


def _lead(session: Session, letter: Letter) -> Department | None:
    lead = session.scalars(lead_assignment(letter.id)).first()
    return lead.department if lead else None
