"""退件 and 延期: a department sends a letter back the working day it came, with a reason,
or asks before the deadline for more time, which the hotline centre grants or refuses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.core.access import lead_assignment
from gateway.core.workflow.base import Base
from gateway.core.workflow.citizen import tell_citizen
from gateway.core.workflow.transitions import Actor, WorkflowError
from store.models import Letter


class Returning(Base):
    def return_letter(self, session: Session, letter: Letter, reason: str, actor: Actor) -> None:
        """退件: only on the working day of assignment, with a reason; back to triage."""
        if not (reason or "").strip():
            raise WorkflowError("a return needs a reason", "退件须说明理由")
        assignment = self._own_assignment(session, letter, actor)
        if not self.calendar.same_working_day(assignment.assigned_at, self.clock()):
            raise WorkflowError(
                "a letter can only be returned on the working day it came",
                "退件只能在交办当个工作日内进行",
            )
        letter.status = self._check(letter, "return", actor)
        for other in self._assignments(session, letter):
            other.status = "returned"
        letter.due_at = None
        self._event(session, letter, actor, "returned", assignment.department, reason=reason)

    def request_extension(
        self, session: Session, letter: Letter, reason: str, actor: Actor
    ) -> None:
        """延期: asked before the deadline, with a reason (the regulations require one)."""
        if not (reason or "").strip():
            raise WorkflowError("an extension needs a reason", "延期申请须说明理由")
        assignment = self._own_assignment(session, letter, actor)
        self._check(letter, "request_extension", actor)
        if assignment.due_at is not None and self.clock() >= assignment.due_at:
            raise WorkflowError(
                "an extension must be asked for before the deadline", "延期须在办理期限届满前申请"
            )
        self._event(
            session, letter, actor, "extension_requested", assignment.department, reason=reason
        )

    def decide_extension(
        self, session: Session, letter: Letter, approved: bool, actor: Actor
    ) -> None:
        self._check(letter, "decide_extension", actor)
        lead = session.scalars(lead_assignment(letter.id)).first()
        if lead is None or lead.due_at is None:
            raise WorkflowError(
                "the letter has no open assignment with a deadline", "此信件没有在办的限期交办"
            )
        if approved:
            due = self.calendar.extend(lead.due_at, self.deadlines.extension_days)
            for assignment in self._assignments(session, letter):
                assignment.due_at = due
            letter.due_at = due
            tell_citizen(
                session, letter, f"您的来信办理期限已延长至{self._local(due)}。", self.clock
            )
        self._event(session, letter, actor, "extension_decided", lead.department, approved=approved)
