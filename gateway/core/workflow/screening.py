"""A new letter's first steps: read its words, classify it, screen out what the hotline does
not take, link a duplicate to the matter in hand, route it; and the hotline centre's own
rejection and reclassification."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from gateway.contract.config import CATEGORIES, REJECTIONS
from gateway.core.duplicates import find_duplicate
from gateway.core.routing import body, content
from gateway.core.workflow.answers import take_visit_answer
from gateway.core.workflow.assignment import Assigning
from gateway.core.workflow.citizen import ACCEPTED, queue_receipt, tell_citizen
from gateway.core.workflow.departments import active_department
from gateway.core.workflow.transitions import SYSTEM, Actor, known
from store.models import Letter


@dataclass(frozen=True)
class Reading:
    """What routing found for a letter's words (``text``) outside the write lock."""

    text: str
    words: list[str]
    original_id: int | None


class Screening(Assigning):
    def read(self, session: Session, letter: Letter) -> Reading:
        """The costly part of process(), done apart in a read-only session so that the
        one writer SQLite allows is not held for it: cutting the letter's words and
        looking for the matter it repeats. Changes nothing in the store."""
        text = content(letter)
        with session.no_autoflush:
            letter.district = letter.district or self.rules.district(body(letter))
            original = find_duplicate(self.routing, session, letter, self.clock())
        return Reading(text, self.rules.words(text), original.id if original else None)

    def process(self, session: Session, letter: Letter, reading: Reading | None = None) -> str:
        """Classify, screen, link duplicates and route a new letter; returns its status.
        ``reading``: what read() found, used when the letter's words are still those."""
        if take_visit_answer(self, session, letter):
            return letter.status  # the citizen's answer to 回访, recorded on that letter
        system = Actor(SYSTEM, "routing")
        self._check(letter, "process", system)
        if reading is not None and reading.text != content(letter):
            reading = None  # its words changed since (a transcript came): read them again
        words = reading.words if reading else self.rules.words(content(letter))
        if letter.category is None and (category := self.rules.classify(words)):
            letter.category = category
            self._event(session, letter, system, "classified", category=category)
        letter.district = letter.district or self.rules.district(body(letter))
        reason = self.rules.screen(letter, words, letter.citizen, len(letter.attachments))
        if reason is not None:
            self.reject(session, letter, reason, system)
            return letter.status
        if reading is None:
            original = find_duplicate(self.routing, session, letter, self.clock())
        else:
            original = session.get(Letter, reading.original_id) if reading.original_id else None
        if original is not None:
            # 并单: linked to the matter in hand; its reply will answer this citizen too.
            letter.duplicate_of_id, letter.status = original.id, "duplicate"
            self._event(session, letter, system, "duplicate", original=original.tracking_number)
            self._receipt(session, letter, "您反映的问题已在办理中，办理结果将一并答复您。")
            return letter.status
        decision = self.rules.route(letter.category, body(letter), letter.district)
        letter.status = "triage"
        if decision is None:
            self._event(session, letter, system, "triage")
            self._receipt(session, letter, ACCEPTED)
            return letter.status
        departments = [decision.department, *decision.co_departments]
        self.assign(session, letter, departments, "assign", decision.reply_type, system)
        lead = active_department(session, decision.department).name
        due = self._local(letter.due_at) if letter.due_at else None
        self._receipt(session, letter, f"已转交{lead}办理，{due}前答复您。" if due else ACCEPTED)
        return letter.status

    def _receipt(self, session: Session, letter: Letter, outcome: str) -> None:
        """The one receipt, sent once screening has decided: never 已受理 and then a
        rejection (a rejected letter's receipt is its rejection, see reject())."""
        if self.receipts is not None:
            queue_receipt(session, letter, self.receipts, outcome, self.clock())

    def reject(self, session: Session, letter: Letter, reason: str, actor: Actor) -> None:
        known(reason, REJECTIONS, "rejection reason", "不予受理理由")
        letter.status = self._check(letter, "reject", actor)
        letter.rejection = reason
        self._event(session, letter, actor, "rejected", reason=reason)
        text = self.routing.screening.replies.get(reason)
        if text and reason not in ("malicious", "advertising"):
            tell_citizen(session, letter, text, self.clock)

    def reclassify(self, session: Session, letter: Letter, category: str, actor: Actor) -> None:
        known(category, CATEGORIES, "category", "类别")
        self._check(letter, "reclassify", actor)
        self._event(session, letter, actor, "reclassified", old=letter.category, new=category)
        letter.category = category
