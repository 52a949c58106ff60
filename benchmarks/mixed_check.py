"""What benchmarks/mixed.py reads back from the store: every acknowledged contact found as
exactly one letter with its text, routed exactly once, and the seconds from its intake
(the "received" event, written in the letter's own transaction) to its routing outcome
(the event the workflow writes in the routing job's transaction: assigned to the lead,
triage, duplicate or rejected)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import selectinload

from benchmarks.mixed_load import Sent
from gateway.engine.webhooks import webhook_type
from store.db import make_sessionmaker
from store.models import Event, Letter, OutboxMessage, WebhookCursor

OUTCOMES = ("assigned", "triage", "duplicate", "rejected")


@dataclass
class Stored:
    id: int
    channel: str
    external_id: str
    tracking_number: str
    text: str
    phone: str  # the last 11 digits of the citizen's phone, or ""
    status: str
    received: datetime | None = None
    outcomes: list[tuple[str, datetime]] = field(default_factory=list)
    ocr: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)

    @property
    def routed(self) -> datetime | None:
        return min((at for _, at in self.outcomes), default=None)

    @property
    def seconds(self) -> float | None:
        if self.received is None or self.routed is None:
            return None
        return (self.routed - self.received).total_seconds()


def digits(phone: str | None) -> str:
    return re.sub(r"\D", "", phone or "")[-11:]


def read_store(engine: Engine) -> list[Stored]:
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        found = {
            row.id: Stored(
                row.id,
                row.channel,
                row.external_id,
                row.tracking_number,
                row.text or "",
                digits(row.citizen.phone if row.citizen else None),
                row.status,
            )
            for row in session.scalars(select(Letter).options(selectinload(Letter.citizen)))
        }
        events = select(Event.letter_id, Event.kind, Event.at, Event.detail).where(
            Event.kind.in_(("received", *OUTCOMES, "ocr_done", "ocr_failed"))
        )
        for letter_id, kind, at, detail in session.execute(events):
            letter = found.get(letter_id)
            if letter is None:
                continue
            if kind == "received":
                letter.received = at
            elif kind in ("ocr_done", "ocr_failed"):
                letter.ocr.append((kind, at, dict(detail or {})))
            elif kind != "assigned" or (detail or {}).get("lead", True):
                letter.outcomes.append((kind, at))
    return list(found.values())


def routed_count(engine: Engine, ids: set[int]) -> int:
    """How many of these letters have a routing outcome (cheap enough to ask each second)."""
    if not ids:
        return 0
    query = select(Event.letter_id).where(Event.kind.in_(OUTCOMES)).distinct()
    with engine.connect() as conn:
        return len(ids & set(conn.execute(query).scalars()))


def receipts(engine: Engine, letters: set[int]) -> tuple[list[float], int]:
    """Seconds from queued to sent of these letters' SMS receipts, and how many are unsent."""
    query = select(OutboxMessage.letter_id, OutboxMessage.created_at, OutboxMessage.sent_at).where(
        OutboxMessage.kind == "sms"
    )
    with engine.connect() as conn:
        rows = [r for r in conn.execute(query) if r.letter_id in letters]
    sent = [(r.sent_at - r.created_at).total_seconds() for r in rows if r.sent_at is not None]
    return sent, len(rows) - len(sent)


def outbox_pending(engine: Engine) -> dict[str, int]:
    """Messages still owed, by kind (sms, email, webhook)."""
    query = (
        select(OutboxMessage.kind, func.count())
        .where(OutboxMessage.status == "pending")
        .group_by(OutboxMessage.kind)
    )
    with engine.connect() as conn:
        return {str(kind): int(n) for kind, n in conn.execute(query)}


def owed_once_enabled(engine: Engine, endpoint: str) -> int:
    """What the disabled endpoint will be owed when it is enabled again: the messages given
    up because it was gone, and one per announced event past its cursor."""
    with engine.connect() as conn:
        cursor = conn.execute(
            select(WebhookCursor.last_event_id).where(WebhookCursor.endpoint == endpoint)
        ).scalar_one_or_none()
        if cursor is None:
            return 0
        gone = conn.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "webhook", OutboxMessage.status == "failed")
        ).scalar_one()
        events = conn.execute(select(Event.kind, Event.detail).where(Event.id > cursor)).all()
    return int(gone) + sum(webhook_type(k, d or {}, "") is not None for k, d in events)


def webhooks_owed(engine: Engine) -> int:
    query = select(OutboxMessage.id).where(
        OutboxMessage.kind == "webhook", OutboxMessage.status == "pending"
    )
    with engine.connect() as conn:
        return len(conn.execute(query).all())


@dataclass
class Verdict:
    """One phase's contacts against the store."""

    acknowledged: int = 0
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # From the client's acknowledgement (SMS: on the SIM) to the routing outcome.
    end_to_end: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    letters: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def all_seconds(self) -> list[float]:
        return [s for per in self.seconds.values() for s in per]


class Matcher:
    """Finds each sent contact's letters by what the medium carries."""

    def __init__(self, stored: list[Stored]) -> None:
        self.by_key: dict[tuple[str, str], list[Stored]] = defaultdict(list)
        for s in stored:
            self.by_key["external", s.external_id].append(s)
            self.by_key["tracking", s.tracking_number].append(s)
            if s.phone:
                self.by_key[s.channel, s.phone].append(s)
        self.claimed: set[int] = set()

    def letters_of(self, sent: Sent) -> list[Stored]:
        if sent.channel in ("email", "fax"):
            return self.by_key["external", sent.key]
        if sent.channel == "web":
            return self.by_key["tracking", sent.key]
        return self.by_key[sent.channel, digits(sent.key)]


def verify(sent: list[Sent], matcher: Matcher) -> Verdict:
    verdict = Verdict()
    for contact in sent:
        if contact.error is not None:
            verdict.failures[f"{contact.channel}: refused or failed ({contact.error})"] += 1
            continue
        verdict.acknowledged += 1
        letters = matcher.letters_of(contact)
        matcher.claimed.update(s.id for s in letters)
        if not letters:
            verdict.failures[f"{contact.channel}: acknowledged, never stored"] += 1
            continue
        if len(letters) > 1:
            verdict.failures[f"{contact.channel}: stored {len(letters)} times"] += 1
        letter = letters[0]
        if contact.text and letter.text.strip() != contact.text.strip():
            verdict.failures[f"{contact.channel}: stored with other text"] += 1
        judge(letter, contact.channel, verdict, contact.acked)
    return verdict


def judge(letter: Stored, channel: str, verdict: Verdict, acked: float | None) -> None:
    verdict.letters[channel].add(letter.id)
    if len(letter.outcomes) > 1:
        verdict.failures[f"{channel}: routed {len(letter.outcomes)} times"] += 1
    seconds = letter.seconds
    if seconds is None:
        verdict.failures[f"{channel}: stored, never routed"] += 1
        return
    verdict.outcomes[letter.outcomes[0][0]] += 1
    verdict.seconds[channel].append(seconds)
    if acked is not None and letter.routed is not None:
        verdict.end_to_end.append(letter.routed.timestamp() - acked)


def verify_calls(numbers: list[str], answered: int, matcher: Matcher) -> Verdict:
    """SIPp says how many calls succeeded, not which: every number may have one letter,
    and there must be as many letters as calls that succeeded."""
    verdict = Verdict(acknowledged=answered)
    stored = 0
    for caller in numbers:
        letters = matcher.by_key["phone", digits(caller)]
        matcher.claimed.update(s.id for s in letters)
        if len(letters) > 1:
            verdict.failures[f"phone: one call stored {len(letters)} times"] += 1
        if letters:
            stored += 1
            judge(letters[0], "phone", verdict, None)
    if stored < answered:
        verdict.failures["phone: answered calls with no letter"] += answered - stored
    return verdict
