"""The city's rules for a new letter: its category, whether it is in scope, whether it
repeats an open matter, and which department should answer it."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from gateway.config import RouteRule, RoutingConfig
from gateway.segmentation import Segmenter
from store.models import Citizen, Letter
from store.pii import keyring_of

OPEN_STATES = ("received", "triage", "assigned", "signed", "escalated", "promised")
# What a new letter may repeat: a matter already judged (routed or by hand), not closed.
# Not one still "received": two copies routed at once on two nodes would link each other.
IN_HAND = ("triage", "assigned", "signed", "escalated", "promised", "replied")


def content(letter: Letter) -> str:
    """Everything the citizen wrote or said: the subject and text they typed, or for a
    voicemail or fax (``text_source``) its transcript or OCR text alone, since their subject
    and text are the medium's labels ("电话留言", a fax server's cover note). Empty while
    that text is not known: such a letter is never judged on its labels."""
    if letter.text_source is None:
        return f"{letter.subject}\n{letter.text}\n{letter.transcript or ''}"
    return letter.transcript or ""


def body(letter: Letter) -> str:
    """The text routing rules and districts are looked for in: the typed text, or the
    transcript / OCR text, counted exactly alike."""
    return letter.text if letter.text_source is None else letter.transcript or ""


@dataclass(frozen=True)
class Decision:
    department: str
    reply_type: str
    co_departments: tuple[str, ...] = ()


class Rules:
    """The routing section of config.yaml, made ready to apply (keywords known to jieba)."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        words = {w for ws in config.category_keywords.values() for w in ws}
        words |= {w for r in config.rules for w in r.keywords} | set(config.districts)
        s = config.screening
        words |= set(s.advertising) | set(s.abusive) | set(s.judicial)
        self.segmenter = Segmenter(words)

    def words(self, text: str) -> list[str]:
        return self.segmenter.cut(text)

    def classify(self, words: list[str]) -> str | None:
        """The category whose keywords occur most often; None when none occurs."""
        counts = Counter(words)
        scores = {
            category: sum(counts[k] for k in keywords)
            for category, keywords in self.config.category_keywords.items()
        }
        best = max(scores.items(), key=lambda item: item[1], default=(None, 0))
        return best[0] if best[1] > 0 else None

    def district(self, text: str) -> str | None:
        return next((d for d in self.config.districts if d in text), None)

    def screen(
        self, letter: Letter, words: list[str], citizen: Citizen | None, attachments: int
    ) -> str | None:
        """The reason a letter is outside the hotline's scope (非受理范围), if it can be
        decided automatically; None leaves it to the normal flow."""
        s = self.config.screening
        text = content(letter)
        if not text.strip() and attachments == 0:
            return "empty"
        if any(w in text for w in s.abusive):
            return "malicious"
        if sum(text.count(w) for w in s.advertising) >= s.advertising_threshold:
            return "advertising"
        if any(w in text for w in s.judicial):
            return "judicial"
        if letter.category in s.require_identity_for and not letter.anonymous:
            known = citizen is not None and citizen.name and (citizen.phone or citizen.email)
            if not known:
                return "unidentified"
        return None

    def route(self, category: str | None, text: str, district: str | None) -> Decision | None:
        for rule in self.config.rules:
            if self._matches(rule, category, text, district):
                return Decision(rule.department, rule.reply_type, tuple(rule.with_departments))
        return None

    @staticmethod
    def _matches(rule: RouteRule, category: str | None, text: str, district: str | None) -> bool:
        return (
            (not rule.categories or category in rule.categories)
            and (not rule.districts or district in rule.districts)
            and (not rule.keywords or any(k in text for k in rule.keywords))
        )

    def find_duplicate(self, session: Session, letter: Letter, now: datetime) -> Letter | None:
        """A letter in hand (judged, not closed) from the same citizen (phone or e-mail) or
        about the same place, with similar text, received within the window.
        Only words are compared: a letter with none (a voicemail or fax not yet read, or
        read as nothing) repeats nothing and is repeated by nothing."""
        mine = content(letter)
        if not mine.strip():
            return None
        since = now - timedelta(days=self.config.duplicate_window_days)
        citizen = letter.citizen
        same_person: list[ColumnElement[bool]] = []
        if citizen is not None:
            # PII is encrypted: the same phone or e-mail is the same keyed hash (under any
            # key, while a rotation is under way).
            keyring = keyring_of(session.get_bind().dialect)
            if citizen.phone and (hashes := keyring.lookup_hashes("phone", citizen.phone)):
                same_person.append(Citizen.phone_hash.in_(hashes))
            if citizen.email and (hashes := keyring.lookup_hashes("email", citizen.email)):
                same_person.append(Citizen.email_hash.in_(hashes))
        if letter.district:
            same_person.append(Letter.district == letter.district)
        if not same_person:
            return None
        candidates = session.scalars(
            select(Letter)
            .outerjoin(Citizen, Letter.citizen_id == Citizen.id)
            .where(
                Letter.id != letter.id,
                Letter.received_at >= since,
                Letter.duplicate_of_id.is_(None),
                Letter.status.in_(IN_HAND),
                or_(*same_person),
            )
            .order_by(Letter.received_at)
            .limit(200)
        )
        for other in candidates:
            ratio = difflib.SequenceMatcher(None, mine, content(other)).ratio()
            if ratio >= self.config.duplicate_similarity:
                return other
        return None
