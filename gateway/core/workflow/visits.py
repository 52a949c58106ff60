"""回访: the follow-up visit after the final reply. Satisfied or mostly satisfied (基本满意)
closes the letter; unsatisfied sends it back to its lead department. An operator records
it after a call; the citizen's own SMS or e-mail answer is read in answers.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.core.access import lead_assignment
from gateway.core.workflow.base import Base
from gateway.core.workflow.transitions import Actor, known
from store.models import Letter

SATISFIED, MOSTLY_SATISFIED, UNSATISFIED = "satisfied", "mostly_satisfied", "unsatisfied"
SATISFACTIONS = (SATISFIED, MOSTLY_SATISFIED, UNSATISFIED)


class Visiting(Base):
    def visit(
        self, session: Session, letter: Letter, satisfaction: str, actor: Actor, note: str = ""
    ) -> None:
        """回访 by an operator: satisfied or mostly satisfied closes the letter; unsatisfied
        reopens it."""
        record_visit(self, session, letter, satisfaction, actor, note)


def record_visit(
    workflow: Base,
    session: Session,
    letter: Letter,
    satisfaction: str,
    actor: Actor,
    note: str = "",
    **detail: Any,
) -> None:
    """The citizen's satisfaction, however it was learnt: the 'visited' event carries it
    for statistics (``satisfied`` true when it closed the letter)."""
    known(satisfaction, SATISFACTIONS, "satisfaction", "满意度")
    workflow._check(letter, "visit", actor)
    letter.satisfaction = satisfaction
    closes = satisfaction != UNSATISFIED
    lead = session.scalars(lead_assignment(letter.id)).first()
    workflow._event(
        session,
        letter,
        actor,
        "visited",
        lead.department if lead else None,
        satisfied=closes,
        satisfaction=satisfaction,
        note=note,
        **detail,
    )
    if closes or lead is None:
        letter.status, letter.closed_at = "closed", workflow.clock()
        return
    # The first reply keeps its time: statistics still count it (and its timeliness);
    # the next final reply will set a new one, and ask the citizen again.
    lead.status = letter.status = "signed"
    letter.visit_asked_at = letter.visit_callback_at = None
    workflow._event(session, letter, actor, "reopened", lead.department)
