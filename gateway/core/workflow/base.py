"""What every step of the workflow shares: its settings and clock, the table's check, the
letter's event log, and a department's hold on its own open assignments."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.config import DeadlinesConfig, RoutingConfig, VisitsConfig
from gateway.contract.labels import STATUS_LABELS
from gateway.core.access import held_by
from gateway.core.deadlines import WorkCalendar
from gateway.core.routing import Rules
from gateway.core.workflow.citizen import Media
from gateway.core.workflow.transitions import OPEN_ASSIGNMENT, TRANSITIONS, Actor, WorkflowError
from store.letters import record_event
from store.models import Assignment, Department, Letter


class Base:
    def __init__(
        self,
        routing: RoutingConfig,
        deadlines: DeadlinesConfig,
        calendar: WorkCalendar,
        clock: Callable[[], datetime],
        notify_departments: bool = False,
        visits: VisitsConfig | None = None,
        receipts: Media | None = None,
    ) -> None:
        self.rules = Rules(routing)
        self.routing = routing
        self.deadlines = deadlines
        self.calendar = calendar
        self.clock = clock
        self.notify_departments = notify_departments
        self.visits = visits or VisitsConfig()
        # Where routing sends the citizen's receipt once screened; None: intake sent it.
        self.receipts = receipts

    def _check(self, letter: Letter, action: str, actor: Actor) -> str:
        allowed = TRANSITIONS.get((letter.status, action))
        if allowed is None:
            raise WorkflowError(
                f"cannot {action} a letter that is {letter.status}",
                f"信件当前为「{STATUS_LABELS.get(letter.status, letter.status)}」，不能进行此操作",
            )
        to, roles = allowed
        if actor.role not in roles:
            raise WorkflowError(
                f"a {actor.role} cannot {action} (only {', '.join(sorted(roles))})",
                "您的角色不能进行此操作",
            )
        return to or letter.status

    def _event(
        self,
        session: Session,
        letter: Letter,
        actor: Actor,
        event_kind: str,
        department: Department | None = None,
        **detail: Any,
    ) -> None:
        record_event(
            session,
            at=self.clock(),
            actor=actor.label,
            kind=event_kind,
            letter=letter,
            department_id=department.id if department else None,
            **detail,
        )

    def _own_assignment(self, session: Session, letter: Letter, actor: Actor) -> Assignment:
        """A department acts only on a letter it holds, through its assignment still open."""
        own = session.scalars(
            select(Assignment)
            .where(
                Assignment.letter_id == letter.id,
                Assignment.status.in_(OPEN_ASSIGNMENT),
                *held_by(actor.department),
            )
            .order_by(Assignment.id)
        ).first()
        if own is None:
            raise WorkflowError(
                f"letter {letter.tracking_number} is not assigned to {actor.department}",
                "此信件未交办给本单位（或已办结、已退回）",
            )
        return own

    @staticmethod
    def _assignments(session: Session, letter: Letter) -> list[Assignment]:
        return list(
            session.scalars(
                select(Assignment).where(
                    Assignment.letter_id == letter.id, Assignment.status.in_(OPEN_ASSIGNMENT)
                )
            )
        )

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.calendar.zone).strftime("%Y年%m月%d日")
