"""Who may see what, for every front end (REST API, Open311, console, webhooks): which
letters a department has, whose citizen stays hidden from it, and which files of a letter
identify that citizen. The front ends call these; none writes its own copy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, exists, select
from sqlalchemy.orm import InstrumentedAttribute

from store.models import Assignment, Department, Letter

# 退件: a returned assignment is no longer the department's letter.
RETURNED = "returned"


def hidden(letter: Any) -> bool:
    """A reporter (举报人), a citizen who asked to stay anonymous, a confidential letter: no
    department ever sees this citizen. ``letter`` is a Letter or a row with these columns."""
    return bool(letter.category == "report" or letter.anonymous or letter.confidential)


def department_id(code: str) -> ScalarSelect[int]:
    return select(Department.id).where(Department.code == code).scalar_subquery()


def assigned_to(department: int | ScalarSelect[int] | None) -> ColumnElement[bool]:
    """The letters a department has now: one of its assignments is open or done (signed,
    replied), not returned. A letter it returned (退件), or that then moved on to another
    department, is no longer its own; assigned to it again, it is."""
    return exists(
        select(Assignment.id).where(
            Assignment.letter_id == Letter.id,
            Assignment.department_id == department,
            Assignment.status != RETURNED,
        )
    )


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


def identifies(letter: Any, media_type: str) -> bool:
    """A file that gives its citizen away and cannot be scrubbed: a voice recording, and
    a fax's pages (the sending machine's number heads each, the citizen's hand or
    letterhead is on them). Photos of the matter are the matter, not the citizen."""
    return media_type.startswith("audio/") or letter.channel == "fax"


def file_shown(letter: Any, media_type: str, *, department: bool, pii: bool) -> bool:
    """Whether a file is given to this reader: everything, except a hidden citizen's
    identifying files, which only the hotline centre's own readers with the right to
    see citizens get (never a department, whatever it holds)."""
    if not (hidden(letter) and identifies(letter, media_type)):
        return True
    return pii and not department
