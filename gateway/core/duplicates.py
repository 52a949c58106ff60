"""并单: whether a new letter repeats a matter in hand, from the same citizen or about the
same place, in words similar enough."""

from __future__ import annotations

import difflib
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, Select, or_, select
from sqlalchemy.orm import Session

from gateway.contract.config import RoutingConfig
from gateway.core.routing import content
from store.models import Citizen, Letter
from store.pii import keyring_of

# What a new letter may repeat: a matter already judged (routed or by hand), not closed.
# Not one still "received": two copies routed at once on two nodes would link each other.
IN_HAND = ("triage", "assigned", "signed", "escalated", "promised", "replied")


def find_duplicate(
    config: RoutingConfig, session: Session, letter: Letter, now: datetime
) -> Letter | None:
    """A letter in hand (judged, not closed) from the same citizen (phone or e-mail) or
    about the same place, with similar text, received within the window; the oldest
    such among the newest ``CANDIDATES`` of each kind.
    Only words are compared: a letter with none (a voicemail or fax not yet read, or
    read as nothing) repeats nothing and is repeated by nothing."""
    mine = content(letter)
    if not mine.strip():
        return None
    since = now - timedelta(days=config.duplicate_window_days)
    found: dict[int, Candidate] = {}
    for query in duplicate_queries(session, letter, since):
        found.update((row.id, row) for row in session.execute(query))
    threshold = config.duplicate_similarity
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
