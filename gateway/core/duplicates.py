"""并单: whether a new letter repeats a matter in hand, from the same citizen (by phone, one
written in the text too, or e-mail) or about the same place, in words similar enough."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import ColumnElement, Row, Select, or_, select
from sqlalchemy.orm import Session

from gateway.contract.config import RoutingConfig
from gateway.core.routing import content
from store.models import Citizen, Letter, LetterPhone
from store.phones import numbers_in
from store.pii import keyring_of
from store.pii_rotation import old_phone_forms

# What a new letter may repeat: a matter already judged (routed or by hand), not closed.
# Not one still "received": two copies routed at once on two nodes would link each other.
IN_HAND = ("triage", "assigned", "signed", "escalated", "promised", "replied")


def find_duplicate(
    config: RoutingConfig, session: Session, letter: Letter, now: datetime
) -> Letter | None:
    """A letter in hand (judged, not closed) from the same citizen (phone or e-mail, or a
    phone either letter's words give) or about the same place, with similar text, received
    within the window; the oldest such among the newest ``CANDIDATES`` of each kind.
    Only words are compared: a letter with none (a voicemail or fax not yet read, or
    read as nothing) repeats nothing and is repeated by nothing."""
    mine = words_of(content(letter))
    if not mine:
        return None
    since = now - timedelta(days=config.duplicate_window_days)
    found: dict[int, Candidate] = {}
    for query in duplicate_queries(session, letter, since).values():
        found.update((row.id, row) for row in session.execute(query))
    cutoff = 100 * config.duplicate_similarity
    for other in sorted(found.values(), key=lambda row: (row.received_at, row.id)):
        if fuzz.ratio(mine, words_of(content(other)), score_cutoff=cutoff):
            return session.get(Letter, other.id)
    return None


# Punctuation, spaces and line breaks say nothing of the matter; letters and digits do.
_NOT_WORDS = re.compile(r"[\W_]+")


def words_of(text: str) -> str:
    return _NOT_WORDS.sub("", text)


def similarity(a: str, b: str) -> float:
    """How alike two letters' words are, 0 to 1: twice the characters they have in common,
    in order, over both lengths (difflib's ratio, computed exactly by rapidfuzz, without
    difflib's junk heuristic, which past 200 characters ignores the commonest characters),
    of their letters and digits."""
    return fuzz.ratio(words_of(a), words_of(b)) / 100


# How many of the newest letters in hand from the same citizen, and how many about the same
# district, a new letter is compared with: each comes from an index in order of receipt, so
# routing a letter costs the same however many letters the window holds.
CANDIDATES = 50

# id, received_at and the columns content() reads.
Candidates = Select[int, datetime, str, str, str | None, str | None]
Candidate = Row[int, datetime, str, str, str | None, str | None]


def duplicate_queries(session: Session, letter: Letter, since: datetime) -> dict[str, Candidates]:
    """The candidates a letter may repeat, one query per kind of sameness, each answered
    from an index: the same ``citizen`` (``ix_letters_citizen_received``, their citizen rows
    found by lookup hash), a letter whose words give one of this letter's ``phone`` numbers
    (``ix_letter_phones_hash_received``) and the same ``district``
    (``ix_letters_district_received``)."""
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
    queries: dict[str, Candidates] = {}
    phones = phones_of(letter)
    if (hashes := same_citizen(session, letter, phones)) is not None:
        # A join from citizens, not `citizen_id IN (subquery)`: given the latter, SQLite
        # (which has no statistics here) reads every letter in hand by the status index.
        queries["citizen"] = (
            in_hand.join(Citizen, Letter.citizen_id == Citizen.id)
            .where(hashes)
            .order_by(newest)
            .limit(CANDIDATES)
        )
    # Noted as hashes of the E.164 form only (store/models.py note_phones).
    if mentioned := phone_hashes(session, phones, old_forms=False):
        queries["phone"] = (
            in_hand.join(LetterPhone, LetterPhone.letter_id == Letter.id)
            .where(LetterPhone.phone_hash.in_(mentioned))
            .order_by(LetterPhone.received_at.desc())
            .limit(CANDIDATES)
        )
    if letter.district:
        queries["district"] = (
            in_hand.where(Letter.district == letter.district).order_by(newest).limit(CANDIDATES)
        )
    return queries


def phones_of(letter: Letter) -> list[str]:
    """The citizen's phone and those the letter's words give (subject, text, transcript)."""
    written = f"{letter.subject}\n{letter.text}\n{letter.transcript or ''}"
    sender = [letter.citizen.phone] if letter.citizen and letter.citizen.phone else []
    return [*sender, *numbers_in(written)]


def phone_hashes(session: Session, phones: list[str], old_forms: bool) -> list[str]:
    """Phones as the hashes to look them up by: under every key (while a rotation is under
    way) and, with ``old_forms``, in the form before E.164 too."""
    keyring = keyring_of(session.get_bind().dialect)
    found = (keyring.lookup_hashes("phone", p, old_forms) for p in phones)
    return list(dict.fromkeys(h for hashes in found for h in hashes))


def same_citizen(session: Session, letter: Letter, phones: list[str]) -> ColumnElement[bool] | None:
    """Citizens with one of the letter's ``phones`` or its citizen's e-mail. PII is encrypted:
    the same phone or e-mail is the same keyed hash (under any key, while a rotation is
    under way; of the old form too, while `hotline pii rotate` has not recomputed those)."""
    keyring = keyring_of(session.get_bind().dialect)
    old_forms = old_phone_forms(session.connection())
    same: list[ColumnElement[bool]] = []
    if hashes := phone_hashes(session, phones, old_forms):
        same.append(Citizen.phone_hash.in_(hashes))
    email = letter.citizen.email if letter.citizen else None
    if email and (hashes := keyring.lookup_hashes("email", email)):
        same.append(Citizen.email_hash.in_(hashes))
    return or_(*same) if same else None
