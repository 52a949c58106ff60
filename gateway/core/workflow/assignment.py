"""交办 and 呈办: a letter given to its lead department (and co-departments for a joint
letter) with a deadline, or escalated to a leader whose instruction assigns it; the
department signs for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.contract.config import REPLY_TYPES
from gateway.core.workflow.base import Base
from gateway.core.workflow.departments import active_department
from gateway.core.workflow.transitions import SYSTEM, Actor, WorkflowError, known
from store.models import Assignment, Letter


class Assigning(Base):
    def assign(
        self,
        session: Session,
        letter: Letter,
        departments: Sequence[str],
        mode: str,
        reply_type: str,
        actor: Actor,
    ) -> list[Assignment]:
        """交办 to a lead department (the first) and, for a joint letter, co-departments."""
        known(reply_type, REPLY_TYPES, "reply type", "答复类型")
        status = self._check(letter, "assign", actor)
        if not departments:
            raise WorkflowError("name at least one department", "请至少选择一个承办单位")
        now = self.clock()
        due = self.deadline(letter, reply_type, now)
        letter.status, letter.mode, letter.reply_type, letter.due_at = status, mode, reply_type, due
        made = []
        for n, code in enumerate(departments):
            department = active_department(session, code)
            assignment = Assignment(
                letter_id=letter.id,
                department_id=department.id,
                mode=mode,
                reply_type=reply_type,
                lead=n == 0,
                status="assigned",
                assigned_at=now,
                due_at=due,
            )
            session.add(assignment)
            made.append(assignment)
            self._event(
                session,
                letter,
                actor,
                "assigned",
                department,
                lead=n == 0,
                reply_type=reply_type,
                due_at=due.isoformat(),
            )
        return made

    def deadline(self, letter: Letter, reply_type: str, now: datetime) -> datetime:
        """When a letter assigned now with this reply type is due (the console previews it)."""
        d = self.deadlines
        if reply_type == "urgent":
            return self.calendar.add_working_hours(now, d.urgent_hours)
        days = d.joint_days if reply_type == "joint" else d.days.get(letter.category or "other", 7)
        return self.calendar.add_working_days(now, days)

    def escalate(self, session: Session, letter: Letter, actor: Actor, note: str = "") -> None:
        letter.status = self._check(letter, "escalate", actor)
        letter.mode = "escalate"
        self._event(session, letter, actor, "escalated", note=note)

    def instruct(
        self,
        session: Session,
        letter: Letter,
        instruction: str,
        departments: Sequence[str],
        reply_type: str,
        actor: Actor,
    ) -> None:
        """The leader's instruction (批示) is recorded, then the letter is assigned per it."""
        self._check(letter, "instruct", actor)
        self._event(session, letter, actor, "instructed", instruction=instruction)
        letter.status = "triage"  # assign() takes it from triage, as the table says
        self.assign(
            session,
            letter,
            departments,
            "escalate",
            reply_type,
            Actor(SYSTEM, f"instruction-of-{actor.name}"),
        )

    def sign(self, session: Session, letter: Letter, actor: Actor) -> None:
        assignment = self._own_assignment(session, letter, actor)
        letter.status = self._check(letter, "sign", actor)
        assignment.status, assignment.signed_at = "signed", self.clock()
        self._event(session, letter, actor, "signed", assignment.department)
