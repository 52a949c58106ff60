"""Who may see what: the rights of each role, a department's own letters only, and the
citizen's details masked (a reporter's not at all) unless revealed with a reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from gateway.core.access import assigned_to, hidden
from gateway.frontends.api.privacy import mask_email, mask_name, mask_phone, redactor
from gateway.frontends.console.accounts import Staff
from store.models import Citizen, Letter

# right -> roles that have it
RIGHTS: dict[str, frozenset[str]] = {
    "inbox": frozenset({"operator", "supervisor", "leader"}),
    "dispatch": frozenset({"operator"}),
    "queue": frozenset({"department"}),
    "supervision": frozenset({"operator", "supervisor", "leader"}),
    "follow_up": frozenset({"operator", "supervisor"}),
    # 漏接回拨: calling a citizen back needs their number (each reveal audited).
    "callbacks": frozenset({"operator"}),
    "dashboard": frozenset({"operator", "supervisor", "leader", "admin"}),
    # Seeing a citizen's full details, with a reason written to the audit log.
    "reveal": frozenset({"operator", "supervisor", "leader"}),
    "admin": frozenset({"admin"}),
    # Any signed-in user may open a letter; what they see of it is decided below.
    "letter": frozenset({"operator", "supervisor", "leader", "department"}),
}
# Reads of a citizen's details: on the audit log, and in an operator's history of a letter.
PII_READS = ("pii_read", "pii.revealed")
HOME = {
    "operator": "/console/inbox",
    "supervisor": "/console/supervision",
    "leader": "/console/dashboard",
    "department": "/console/queue",
    "admin": "/console/admin/users",
}


def may(staff: Staff, right: str) -> bool:
    return staff.role in RIGHTS[right]


def own_letters(staff: Staff) -> ColumnElement[bool]:
    """A department's clerk sees the letters its department has now, nothing else."""
    return assigned_to(staff.department_id) if staff.role == "department" else true()


def find_letter(session: Session, staff: Staff, tracking_number: str) -> Letter | None:
    """None both for no such letter and for someone else's: a clerk cannot probe numbers."""
    if not may(staff, "letter"):
        return None
    return session.scalars(
        select(Letter).where(Letter.tracking_number == tracking_number, own_letters(staff))
    ).one_or_none()


def citizen_view(
    staff: Staff, letter: Letter, citizen: Citizen | None, revealed: bool
) -> dict[str, Any] | None:
    """What of the citizen this page shows; None: nothing at all (a reporter, for a clerk)."""
    if citizen is None:
        return None
    if revealed and may(staff, "reveal"):
        return {
            "name": citizen.name,
            "phone": citizen.phone,
            "email": citizen.email,
            "id_number": citizen.id_number,
            "address": citizen.address,
            "masked": False,
        }
    if staff.role == "department" and hidden(letter):
        return None
    return {
        "name": mask_name(citizen.name),
        "phone": mask_phone(citizen.phone),
        "email": mask_email(citizen.email),
        "id_number": "已登记" if citizen.id_number else None,
        "address": None,
        "masked": True,
    }


def words(
    staff: Staff, letter: Letter, citizen: Citizen | None, revealed: bool
) -> Callable[[str], str]:
    """How the letter's own words read on this page: contact details scrubbed out of them
    too, for everyone, until someone with the right reveals them."""
    return redactor(letter, citizen, revealed and may(staff, "reveal"))
