"""Replies to the citizen: the hotline's own at once (直办), the lead department's interim
(with a promised date) or final one, and a co-department's opinion on a joint letter,
which the lead's final reply waits for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.workflow.asking import ask_visit
from gateway.core.workflow.base import Base
from gateway.core.workflow.citizen import tell_citizen
from gateway.core.workflow.transitions import Actor, WorkflowError
from store.models import Department, Letter, Reply


class Replying(Base):
    def answer(
        self, session: Session, letter: Letter, text: str, actor: Actor, public: bool = False
    ) -> None:
        """直办: the hotline answers at once on the letter's channel."""
        letter.status = self._check(letter, "answer", actor)
        letter.mode = "direct"
        self._reply(session, letter, None, "final", text, public, actor)

    def reply(
        self,
        session: Session,
        letter: Letter,
        text: str,
        actor: Actor,
        *,
        final: bool = True,
        public: bool = False,
        promised_at: datetime | None = None,
    ) -> None:
        assignment = self._own_assignment(session, letter, actor)
        if not assignment.lead:
            raise WorkflowError(
                "only the lead department replies; give an opinion instead",
                "只有牵头单位答复来信人；会办单位请提交会办意见",
            )
        if not final:
            if promised_at is None:
                raise WorkflowError(
                    "an interim reply commits to a completion date", "阶段性答复须填写承诺办结日期"
                )
            letter.status = self._check(letter, "reply_interim", actor)
            assignment.status, assignment.promised_at = "promised", promised_at
            letter.due_at = assignment.due_at = promised_at
            self._reply(session, letter, assignment.department, "interim", text, public, actor)
            return
        letter.status = self._check(letter, "reply_final", actor)
        missing = [
            a.department.code
            for a in self._assignments(session, letter)
            if not a.lead and a.status != "replied"
        ]
        if missing:
            raise WorkflowError(
                f"the co-departments have not given their opinion: {missing}",
                f"会办单位尚未提交意见：{'、'.join(missing)}",
            )
        assignment.status, assignment.replied_at = "replied", self.clock()
        self._reply(session, letter, assignment.department, "final", text, public, actor)

    def opinion(self, session: Session, letter: Letter, text: str, actor: Actor) -> None:
        assignment = self._own_assignment(session, letter, actor)
        self._check(letter, "opinion", actor)
        if assignment.lead:
            raise WorkflowError(
                "the lead department replies; opinions come from co-departments",
                "牵头单位请直接答复；会办意见由会办单位提交",
            )
        assignment.status, assignment.replied_at = "replied", self.clock()
        session.add(
            Reply(
                letter_id=letter.id,
                department_id=assignment.department_id,
                kind="opinion",
                text=text,
                public=False,
                author=actor.label,
                at=self.clock(),
            )
        )
        self._event(session, letter, actor, "opinion", assignment.department)

    def _reply(
        self,
        session: Session,
        letter: Letter,
        department: Department | None,
        kind: str,
        text: str,
        public: bool,
        actor: Actor,
    ) -> None:
        now = self.clock()
        session.add(
            Reply(
                letter_id=letter.id,
                department_id=department.id if department else None,
                kind=kind,
                text=text,
                public=public and not letter.confidential,
                author=actor.label,
                at=now,
            )
        )
        if kind == "final":
            letter.replied_at = now
            # 选登 only with the citizen's consent: a medium that never asked (SMS, e-mail,
            # a call) has none, so its letter is never published.
            letter.publish = public and not letter.confidential and letter.publish_consent is True
            for duplicate in session.scalars(
                select(Letter).where(Letter.duplicate_of_id == letter.id)
            ):
                tell_citizen(session, duplicate, text, self.clock)  # 并单: one answer for all
        self._event(session, letter, actor, "replied", department, reply=kind, public=public)
        tell_citizen(session, letter, text, self.clock)
        if kind == "final":
            ask_visit(self, session, letter)  # 回访, after the reply it asks about
