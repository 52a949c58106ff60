"""The letter's life after intake: dispatch, department actions, chasing, follow-up visit.

Every action is checked against one table of (state, action) -> (next state, roles); an
action the table does not allow raises WorkflowError and changes nothing. Used alike by the
CLI, the API and the console, each inside its own transaction. Each step lives in its own
module; ``Workflow`` composes them over one shared base (settings, clock, event log).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.core.workflow import departments
from gateway.core.workflow.chases import Chasing
from gateway.core.workflow.replies import Replying
from gateway.core.workflow.returns import Returning
from gateway.core.workflow.screening import Reading, Screening
from gateway.core.workflow.transitions import (
    DEPARTMENT,
    LEADER,
    OPEN_ASSIGNMENT,
    OPERATOR,
    SUPERVISOR,
    SYSTEM,
    TRANSITIONS,
    Actor,
    WorkflowError,
)
from gateway.core.workflow.visits import Visiting

__all__ = [
    "DEPARTMENT",
    "LEADER",
    "OPEN_ASSIGNMENT",
    "OPERATOR",
    "SUPERVISOR",
    "SYSTEM",
    "TRANSITIONS",
    "Actor",
    "Reading",
    "Workflow",
    "WorkflowError",
]


class Workflow(Screening, Replying, Returning, Chasing, Visiting):
    """The city's handling of a letter: screening, assignment, replies, returns and
    extensions, chasing, the follow-up visit."""

    def sync_departments(self, session: Session) -> None:
        """Make the departments table say what config.yaml says."""
        departments.sync(session, self.routing.departments)
