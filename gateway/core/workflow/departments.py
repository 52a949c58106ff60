"""The departments table follows config.yaml; letters go only to the active ones."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.config import DepartmentConfig
from gateway.core.workflow.transitions import WorkflowError
from store.models import Department


def sync(session: Session, configured: Sequence[DepartmentConfig]) -> None:
    """Make the departments table say what config.yaml says (new ones added, names
    and contacts updated, removed ones deactivated; none deleted: letters point at them)."""
    known = {d.code: d for d in session.scalars(select(Department))}
    listed = {d.code for d in configured}
    for config in configured:
        row = known.get(config.code) or Department(code=config.code)
        row.name, row.contacts, row.active = config.name, list(config.contacts), True
        session.add(row)
    for code, row in known.items():
        if code not in listed:
            row.active = False


def active_department(session: Session, code: str) -> Department:
    row = session.scalars(select(Department).where(Department.code == code)).one_or_none()
    if row is None or not row.active:
        raise WorkflowError(f"no active department {code!r}", f"没有在用的单位 {code}")
    return row
