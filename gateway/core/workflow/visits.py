"""回访: the follow-up visit after the final reply; a satisfied citizen closes the letter,
an unsatisfied one sends it back to its lead department."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.core.access import lead_assignment
from gateway.core.workflow.base import Base
from gateway.core.workflow.transitions import Actor
from store.models import Letter


class Visiting(Base):
    def visit(
        self, session: Session, letter: Letter, satisfied: bool, actor: Actor, note: str = ""
    ) -> None:
        """回访: satisfied closes the letter; unsatisfied reopens it to its departments."""
        self._check(letter, "visit", actor)
        letter.satisfaction = "satisfied" if satisfied else "unsatisfied"
        lead = session.scalars(lead_assignment(letter.id)).first()
        self._event(
            session,
            letter,
            actor,
            "visited",
            lead.department if lead else None,
            satisfied=satisfied,
            note=note,
        )
        if satisfied or lead is None:
            letter.status, letter.closed_at = "closed", self.clock()
            return
        # The first reply keeps its time: statistics still count it (and its timeliness);
        # the next final reply will set a new one.
        lead.status = letter.status = "signed"
        self._event(session, letter, actor, "reopened", lead.department)
