"""The rights of each console role, and each signed-in person as a reader of letters (what
a reader sees is the access policy's to say)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.access import Viewer, visible_to
from gateway.frontends.console.accounts import Staff
from store.models import Letter

# right -> roles that have it
RIGHTS: dict[str, frozenset[str]] = {
    "inbox": frozenset({"operator", "supervisor", "leader"}),
    "dispatch": frozenset({"operator"}),
    "queue": frozenset({"department"}),
    "supervision": frozenset({"operator", "supervisor", "leader"}),
    "follow_up": frozenset({"operator", "supervisor"}),
    # 漏接回拨: calling a citizen back needs their number (each reveal audited).
    "callbacks": frozenset({"operator"}),
    # 坐席工作台: a seat answers calls, and only an operator has one (gateway/core/seats.py).
    "desk": frozenset({"operator"}),
    "dashboard": frozenset({"operator", "supervisor", "leader", "admin"}),
    # Seeing a citizen's full details, with a reason written to the audit log.
    "reveal": frozenset({"operator", "supervisor", "leader"}),
    "admin": frozenset({"admin"}),
    # 坐席账号: operators' SIP accounts, made and removed by whoever manages console users.
    "seats": frozenset({"admin"}),
    # Any signed-in user may open a letter; what they see of it is the access policy's.
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


def viewer(staff: Staff, revealed: bool = False) -> Viewer:
    """A department's clerk reads as its department; everyone else as the hotline centre,
    seeing a citizen in full only once revealed with a reason."""
    clerk = staff.role == "department"
    return Viewer(
        staff.department_id if clerk else None,
        centre=not clerk,
        pii=may(staff, "reveal"),
        revealed=revealed,
    )


def find_letter(session: Session, staff: Staff, tracking_number: str) -> Letter | None:
    """None both for no such letter and for someone else's: a clerk cannot probe numbers."""
    if not may(staff, "letter"):
        return None
    return session.scalars(
        select(Letter).where(Letter.tracking_number == tracking_number, visible_to(viewer(staff)))
    ).one_or_none()
