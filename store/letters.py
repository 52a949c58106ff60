"""Queries on letters: insert one with its citizen and files, find, list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from store.models import Attachment, Citizen, Event, Letter, TrackingSequence


def next_sequence(session: Session, day: str) -> int:
    """Take the next number of ``day`` atomically (one upsert; rolled back with its letter)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(TrackingSequence)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=["day"], set_={"last": TrackingSequence.last + 1})
        .returning(TrackingSequence.last)
    )
    return int(session.execute(statement).scalar_one())


def find_by_external_id(session: Session, source: str, external_id: str) -> Letter | None:
    return session.scalars(
        select(Letter).where(Letter.source == source, Letter.external_id == external_id)
    ).one_or_none()


def find_by_tracking_number(session: Session, tracking_number: str) -> Letter | None:
    return session.scalars(
        select(Letter)
        .where(Letter.tracking_number == tracking_number)
        .options(selectinload(Letter.attachments), selectinload(Letter.events))
    ).one_or_none()


@dataclass(frozen=True)
class LetterFilter:
    channel: str | None = None
    status: str | None = None
    since: datetime | None = None
    limit: int = 100


def list_letters(session: Session, where: LetterFilter) -> Sequence[Letter]:
    query = select(Letter).options(selectinload(Letter.attachments))
    if where.channel:
        query = query.where(Letter.channel == where.channel)
    if where.status:
        query = query.where(Letter.status == where.status)
    if where.since:
        query = query.where(Letter.received_at >= where.since)
    query = query.order_by(Letter.received_at.desc(), Letter.id.desc()).limit(where.limit)
    return session.scalars(query).all()


def record_event(
    session: Session,
    *,
    at: datetime,
    actor: str,
    kind: str,
    letter: Letter | None = None,
    **detail: Any,
) -> Event:
    event = Event(
        letter_id=letter.id if letter else None, at=at, actor=actor, kind=kind, detail=detail
    )
    session.add(event)
    return event


__all__ = [
    "Attachment",
    "Citizen",
    "LetterFilter",
    "find_by_external_id",
    "find_by_tracking_number",
    "list_letters",
    "next_sequence",
    "record_event",
]
