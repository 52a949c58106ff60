"""The city's rules for a new letter: its category, whether it is in scope, whether it
repeats an open matter, and which department should answer it."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, Row, Select, or_, select
from sqlalchemy.orm import Session

from gateway.contract.config import RouteRule, RoutingConfig
from gateway.core.segmentation import Segmenter
from store.models import Citizen, Letter
from store.pii import keyring_of

OPEN_STATES = ("received", "triage", "assigned", "signed", "escalated", "promised")
# What a new letter may repeat: a matter already judged (routed or by hand), not closed.
# Not one still "received": two copies routed at once on two nodes would link each other.
IN_HAND = ("triage", "assigned", "signed", "escalated", "promised", "replied")


class Written(Protocol):
    """What a letter says, as a Letter or a row of its columns holds it."""

    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def transcript(self) -> str | None: ...
    @property
    def text_source(self) -> str | None: ...


def content(letter: Written) -> str:
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
        about the same place, with similar text, received within the window; the oldest
        such among the newest ``CANDIDATES`` of each kind.
        Only words are compared: a letter with none (a voicemail or fax not yet read, or
        read as nothing) repeats nothing and is repeated by nothing."""
        mine = content(letter)
        if not mine.strip():
            return None
        since = now - timedelta(days=self.config.duplicate_window_days)
        found: dict[int, Candidate] = {}
        for query in duplicate_queries(session, letter, since):
            found.update((row.id, row) for row in session.execute(query))
        threshold = self.config.duplicate_similarity
        characters = Counter(mine).items()
        for other in sorted(found.values(), key=lambda row: (row.received_at, row.id)):
            theirs = content(other)
            # difflib's quick_ratio (the characters in common, in any order) bounds its ratio
            # from above at a fraction of the cost: most candidates stop here.
            count = Counter(theirs).get
            common = sum(min(n, count(c, 0)) for c, n in characters)
            if 2.0 * common / (len(mine) + len(theirs)) < threshold:
                continue
            if difflib.SequenceMatcher(None, mine, theirs).ratio() >= threshold:
                return session.get(Letter, other.id)
        return None


# How many of the newest letters in hand from the same citizen, and how many about the same
# district, a new letter is compared with: each comes from an index in order of receipt, so
# routing a letter costs the same however many letters the window holds.
CANDIDATES = 50

# id, received_at and the columns content() reads.
Candidates = Select[int, datetime, str, str, str | None, str | None]
Candidate = Row[int, datetime, str, str, str | None, str | None]


def duplicate_queries(session: Session, letter: Letter, since: datetime) -> list[Candidates]:
    """The candidates a letter may repeat, one query per kind of sameness, each answered
    from an index: the same citizen (``ix_letters_citizen_received``, their citizen rows
    found by lookup hash) and the same district (``ix_letters_district_received``)."""
    in_hand = select(
        Letter.id,
        Letter.received_at,
        Letter.subject,
        Letter.text,
        Letter.transcript,
        Letter.text_source,
    ).where(
        Letter.received_at >= since,
        Letter.duplicate_of_id.is_(None),
        Letter.status.in_(IN_HAND),
        Letter.id != letter.id,
    )
    newest = Letter.received_at.desc()
    queries = []
    if (hashes := same_citizen(session, letter.citizen)) is not None:
        # A join from citizens, not `citizen_id IN (subquery)`: given the latter, SQLite
        # (which has no statistics here) reads every letter in hand by the status index.
        queries.append(
            in_hand.join(Citizen, Letter.citizen_id == Citizen.id)
            .where(hashes)
            .order_by(newest)
            .limit(CANDIDATES)
        )
    if letter.district:
        queries.append(
            in_hand.where(Letter.district == letter.district).order_by(newest).limit(CANDIDATES)
        )
    return queries


def same_citizen(session: Session, citizen: Citizen | None) -> ColumnElement[bool] | None:
    """Citizens with this one's phone or e-mail. PII is encrypted: the same phone or e-mail
    is the same keyed hash (under any key, while a rotation is under way)."""
    if citizen is None:
        return None
    keyring = keyring_of(session.get_bind().dialect)
    same: list[ColumnElement[bool]] = []
    if citizen.phone and (hashes := keyring.lookup_hashes("phone", citizen.phone)):
        same.append(Citizen.phone_hash.in_(hashes))
    if citizen.email and (hashes := keyring.lookup_hashes("email", citizen.email)):
        same.append(Citizen.email_hash.in_(hashes))
    return or_(*same) if same else None
