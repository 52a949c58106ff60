"""Chasing open assignments: a warning before the deadline, 催办 past it, 督办 when an urged
letter is still unanswered, and the supervision group's 强制办理."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.logs import log_event
from gateway.core.messages import queue_message
from gateway.core.workflow.asking import sweep_visits
from gateway.core.workflow.base import Base
from gateway.core.workflow.transitions import OPEN_ASSIGNMENT, Actor
from store.letters import record_event
from store.models import Assignment, Chase, Letter

# The package's name, which the sweep's log lines have always carried.
log = logging.getLogger("gateway.core.workflow")
# A chase's kind -> the event it writes into the letter's history.
CHASE_EVENTS = {"warning": "warned", "urge": "urged", "supervise": "supervised"}


class Chasing(Base):
    def force(self, session: Session, letter: Letter, note: str, actor: Actor) -> None:
        """强制办理 by the supervision group."""
        self._check(letter, "force", actor)
        for assignment in self._assignments(session, letter):
            self._event(session, letter, actor, "forced", assignment.department, note=note)

    def sweep(
        self, session_factory: Callable[[], Any], now: datetime, batch: int = 500
    ) -> dict[str, int]:
        """Warn before deadlines, urge past them, supervise urged letters still unanswered;
        ask the visits due and hand unanswered ones to operators (asking.py). Each notice is
        issued once per assignment however many nodes sweep (Chase is unique per assignment
        and kind). Returns how many of each were issued (visit_asked, visit_unanswered too)."""
        d = self.deadlines
        issued = {"warning": 0, "urge": 0, "supervise": 0}
        plans: list[tuple[str, Any]] = [
            (
                "warning",
                (Assignment.due_at > now)
                & (Assignment.due_at <= now + timedelta(hours=d.warn_before_hours)),
            ),
            ("urge", Assignment.due_at <= now),
        ]
        for kind, due_filter in plans:
            issued[kind] = self._chase(session_factory, kind, due_filter, now, batch)
        urged_before = now - timedelta(hours=d.supervise_after_hours)
        supervise_filter = Assignment.id.in_(
            select(Chase.assignment_id).where(Chase.kind == "urge", Chase.at <= urged_before)
        )
        issued["supervise"] = self._chase(
            session_factory, "supervise", supervise_filter, now, batch
        )
        # 回访 too: questions asked after their delay, unanswered ones given to an operator.
        issued.update(sweep_visits(self, session_factory, now, batch))
        return issued

    def _chase(
        self,
        session_factory: Callable[[], Any],
        kind: str,
        due_filter: Any,
        now: datetime,
        batch: int,
    ) -> int:
        # No paging by id: each issued (or lost to another node) chase drops its row from
        # the next query, and ordering by deadline lets the (status, due_at) index serve.
        issued = 0
        done = select(Chase.assignment_id).where(Chase.kind == kind)
        while True:
            with session_factory() as session, session.begin():
                rows = list(
                    session.scalars(
                        select(Assignment)
                        .where(
                            Assignment.status.in_(OPEN_ASSIGNMENT),
                            Assignment.due_at.is_not(None),
                            due_filter,
                            Assignment.id.not_in(done),
                        )
                        .order_by(Assignment.due_at)
                        .limit(batch)
                    )
                )
                for assignment in rows:
                    if self._issue(session, assignment, kind, now):
                        issued += 1
            if len(rows) < batch:
                return issued

    def _issue(self, session: Session, assignment: Assignment, kind: str, now: datetime) -> bool:
        try:
            with session.begin_nested():
                session.add(Chase(assignment_id=assignment.id, kind=kind, at=now))
        except sa_exc.IntegrityError:
            return False  # another node issued it first
        letter, department = assignment.letter, assignment.department
        event = CHASE_EVENTS[kind]
        record_event(
            session,
            at=now,
            actor="system:sweep",
            kind=event,
            letter=letter,
            department_id=department.id,
            due_at=assignment.due_at.isoformat() if assignment.due_at else None,
        )
        if kind != "warning" and self.notify_departments:
            title = "催办通知单" if kind == "urge" else "督办通知"
            body = (
                f"{department.name}：\n信件 {letter.tracking_number} 的办理期限为"
                f"{self._local(assignment.due_at or now)}，至今未答复，请抓紧办理并答复。\n"
                "12345市民热线"
            )
            for contact in department.contacts:
                queue_message(
                    session,
                    "email",
                    letter.id,
                    contact,
                    {"subject": f"【12345市民热线】{title} {letter.tracking_number}", "body": body},
                    now,
                )
        log_event(
            log,
            f"sweep.{event}",
            tracking_number=letter.tracking_number,
            department=department.code,
        )
        return True
