"""Who may see what, decided here once for every reader (REST API, Open311, console,
webhooks, the workflow, the citizen's site): which letters, which department leads a letter,
what of its citizen, which of its files. The front ends ask; none keeps its own copy."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, exists, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload

from gateway.contract import tracking
from gateway.contract.redaction import mask_email, mask_phone, scrub
from store.models import Assignment, Citizen, Department, Letter

# 退件: a returned assignment is no longer the department's letter.
RETURNED = "returned"


@dataclass(frozen=True)
class Viewer:
    """Who reads letters. ``department``: the department a reader works for (its code, or
    its id), whose letters alone it sees; None sees every letter. ``centre``: one of the
    hotline centre's own readers, the only kind ever shown a hidden citizen. ``pii``: the
    right to see citizens; ``revealed``: that right used on this read (the console asks
    for a reason first, a token with the pii scope reads in full every time)."""

    department: str | int | None
    centre: bool
    pii: bool = False
    revealed: bool = True

    @classmethod
    def token(cls, department: str | None, pii: bool) -> Viewer:
        """An integrator's API token. A department's token holds pii to call its own
        complainant back, never to learn who reported it."""
        return cls(department, centre=department is None, pii=pii)

    @classmethod
    def endpoint(cls, include_pii: bool) -> Viewer:
        """A webhook endpoint: told of every letter, yet outside the hotline centre."""
        return cls(None, centre=False, pii=include_pii)


# -- which letters ------------------------------------------------------------------------


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """The letters ``viewer`` may see, as a condition on Letter: a department's reader,
    those its department has now; any other reader, every letter."""
    if viewer.department is None:
        return true()
    return exists(
        select(Assignment.id).where(Assignment.letter_id == Letter.id, *held_by(viewer.department))
    )


def held_by(department: str | int | None) -> tuple[ColumnElement[bool], ...]:
    """An assignment its department still holds: open or done (signed, replied), not
    returned. A letter it returned (退件), or that then moved on to another department, is
    no longer its own; assigned to it again, it is."""
    ref = _department_id(department) if isinstance(department, str) else department
    return Assignment.department_id == ref, Assignment.status != RETURNED


def _department_id(code: str) -> ScalarSelect[int]:
    return select(Department.id).where(Department.code == code).scalar_subquery()


# 选登: what the public reads. A letter marked confidential after it was published leaves
# the site at once.
PUBLISHED = (Letter.publish.is_(True), Letter.confidential.is_(False))


def citizens_letter(session: Session, number: str, code: str) -> Letter | None:
    """The citizen's own letter, for its number together with its code; a wrong code is the
    same None as a number that does not exist, so guessing learns nothing."""
    number = tracking.normalize(number)
    if not tracking.is_valid(number):
        return None
    letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one_or_none()
    if letter is None or not hmac.compare_digest(letter.verification_code, code.strip()):
        return None
    return letter


# -- the lead department --------------------------------------------------------------------


def lead_assignment(letter: int | InstrumentedAttribute[int] = Letter.id) -> Select[Assignment]:
    """The assignment of a letter's lead department (牵头单位) while it holds the letter:
    none once it returned it, the new one once the letter is assigned again."""
    return (
        select(Assignment)
        .where(Assignment.letter_id == letter, Assignment.lead.is_(True))
        .where(Assignment.status != RETURNED)
        .order_by(Assignment.id.desc())  # the newest, should two ever be open at once
        .limit(1)
    )


def letter_assignments(letter: int) -> Select[Assignment]:
    """Every assignment of a letter, returned ones too, with its department loaded: the
    lead first, then in the order they were made."""
    return (
        select(Assignment)
        .where(Assignment.letter_id == letter)
        .options(joinedload(Assignment.department))
        .order_by(Assignment.lead.desc(), Assignment.assigned_at, Assignment.id)
    )


def lead_department(
    letter: int | InstrumentedAttribute[int] = Letter.id,
    column: InstrumentedAttribute[str] = Department.code,
) -> ScalarSelect[str]:
    """``column`` (the code, or the name) of that assignment's department: of the letter
    ``letter``, or of each letter a query lists (correlated to Letter.id)."""
    return (
        lead_assignment(letter)
        .with_only_columns(column)
        .join_from(Assignment, Department, Assignment.department_id == Department.id)
        .scalar_subquery()
    )


# -- what of the citizen --------------------------------------------------------------------


class Sight(Enum):
    """What a reader is shown of a letter's citizen."""

    FULL = "full"
    MASKED = "masked"  # enough to tell two apart: 138****5678
    WITHHELD = "withheld"  # nothing, in the letter's words neither


def hidden(letter: Any) -> bool:
    """A reporter (举报人), a citizen who asked to stay anonymous, a confidential letter: no
    department ever sees this citizen. ``letter`` is a Letter or a row with these columns."""
    return bool(letter.category == "report" or letter.anonymous or letter.confidential)


def sight(letter: Any, viewer: Viewer) -> Sight:
    """A hidden citizen only ever in full, and only to the centre's readers with the right;
    to them, masked until revealed; to everyone else, withheld. Any other citizen in full
    to a reader using the right, else masked."""
    if viewer.pii and viewer.revealed and (viewer.centre or not hidden(letter)):
        return Sight.FULL
    if hidden(letter) and not (viewer.centre and viewer.pii):
        return Sight.WITHHELD
    return Sight.MASKED


# Every detail a citizen has; each reader's shape names the ones it shows.
CITIZEN_FIELDS = ("name", "phone", "email", "id_number", "address", "ip")
_MASKED: dict[str, Callable[[str | None], str | None]] = {
    "name": lambda name: name[:1] + "*" * (len(name) - 1) if name else None,
    "phone": mask_phone,
    "email": mask_email,
    "id_number": lambda number: "已登记" if number else None,  # only that one is on record
    "address": lambda _: None,
    "ip": lambda _: None,
}


def citizen_view(
    citizen: Citizen | None, seen: Sight, fields: Sequence[str] = CITIZEN_FIELDS
) -> dict[str, str | None] | None:
    """The ``fields`` of ``citizen`` as ``seen``; None for no citizen, or one withheld."""
    if citizen is None or seen is Sight.WITHHELD:
        return None
    values: dict[str, str | None] = {name: getattr(citizen, name) for name in fields}
    if seen is Sight.FULL:
        return values
    return {name: _MASKED[name](value) for name, value in values.items()}


def words(letter: Any, citizen: Citizen | None, seen: Sight) -> Callable[[str], str]:
    """How the letter's own words read (citizens write their phone or ID number into the
    letter): as written in full sight, else without any contact detail's shape and without
    the citizen's own details; the address too where it could identify them (a hidden
    citizen) or nothing of them is shown."""
    if seen is Sight.FULL:
        return as_written
    if citizen is None:
        return scrub
    known = [citizen.name, citizen.phone, citizen.email, citizen.id_number]
    if hidden(letter) or seen is Sight.WITHHELD:
        known.append(citizen.address)

    def clean(text: str) -> str:
        return scrub(text, known)

    return clean


def as_written(text: str) -> str:
    return text


def scrub_detail(detail: Mapping[str, Any], clean: Callable[[str], str]) -> dict[str, Any]:
    """An event's detail with every string in it (nested too) cleaned."""
    return {key: _cleaned(value, clean) for key, value in detail.items()}


def _cleaned(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return scrub_detail(value, clean)
    if isinstance(value, list | tuple):
        return [_cleaned(v, clean) for v in value]
    return value


# -- which files ----------------------------------------------------------------------------


def gives_away(letter: Any, media_type: str) -> bool:
    """A file of a hidden citizen that identifies them and cannot be scrubbed: a voice
    recording, and a fax's pages (the sending machine's number heads each, the citizen's
    hand or letterhead is on them). Photos of the matter are the matter, not the citizen."""
    return hidden(letter) and (media_type.startswith("audio/") or letter.channel == "fax")


def file_shown(letter: Any, media_type: str, viewer: Viewer) -> bool:
    """Every file, except one that gives a hidden citizen away: that only to the hotline
    centre's own readers with the right to see citizens (never a department)."""
    return not gives_away(letter, media_type) or (viewer.centre and viewer.pii)
