"""Queries on letters: insert one with its citizen and files, find, list."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Table, bindparam, insert, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql import Executable

from store.models import Attachment, Citizen, Event, Letter, TrackingSequence


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


# Intake's statements name the tables, not the mapped classes: an ORM bulk insert spends
# more time in its own bookkeeping than SQLite spends storing the rows. Column types and
# defaults still apply (a citizen's PII sealed, its lookup hashes filled in).
_CITIZENS, _LETTERS, _FILES, _EVENTS, _SEQUENCES = map(
    _table, (Citizen, Letter, Attachment, Event, TrackingSequence)
)


def take_sequences(session: Session, day: str, count: int) -> range:
    """Take the next ``count`` numbers of ``day`` atomically (one upsert; rolled back with
    the letters that use them, so no number is skipped)."""
    statement = _sequence_upsert(session.get_bind().dialect.name)
    last = int(session.connection().execute(statement, {"day": day, "count": count}).scalar_one())
    return range(last - count + 1, last + 1)


@functools.cache
def _sequence_upsert(dialect_name: str) -> Executable:
    """Built once per dialect, values bound at execution: rebuilding it (and its cache key)
    each batch cost more than SQLite's upsert itself."""
    # The dialect's own upsert, imported here: loading PostgreSQL's dialect on SQLite took
    # a command line such as `hotline letters list` 50-90 ms.
    dialect = importlib.import_module(f"sqlalchemy.dialects.{dialect_name}")
    column, count = _SEQUENCES.c.last, bindparam("count", type_=Integer)
    upsert: Executable = (
        dialect.insert(_SEQUENCES)
        .values(day=bindparam("day"), last=count)
        .on_conflict_do_update(index_elements=["day"], set_={"last": column + count})
        .returning(column)
    )
    return upsert


def tracking_numbers_of(
    session: Session, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The letters already stored for these (source, external_id) keys."""
    by_source: dict[str, list[str]] = {}
    for source, external_id in keys:
        by_source.setdefault(source, []).append(external_id)
    # One query per source (a batch mostly has one), not (source, external_id) IN (...):
    # SQLite answers a row-value IN by scanning the whole index, so each intake batch cost
    # more as the table grew.
    found: dict[tuple[str, str], str] = {}
    for source, ids in by_source.items():
        rows = session.connection().execute(_STORED, {"source": source, "ids": ids})
        found.update({(source, external_id): number for external_id, number in rows})
    return found


# One statement for any number of ids (an expanding IN), so it is compiled once.
_STORED = select(_LETTERS.c.external_id, _LETTERS.c.tracking_number).where(
    _LETTERS.c.source == bindparam("source"),
    _LETTERS.c.external_id.in_(bindparam("ids", expanding=True)),
)


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
class NewLetter:
    """A letter about to be inserted: its own columns, its citizen, files and first event."""

    letter: dict[str, Any]
    citizen: dict[str, Any]
    attachments: list[dict[str, Any]]
    event: dict[str, Any]


def insert_letters(session: Session, batch: Sequence[NewLetter]) -> list[int]:
    """Insert a batch with one statement per table (insertmanyvalues), returning letter ids
    in batch order; far cheaper per letter than ORM units of work under group commit."""
    if not batch:
        return []
    # Core statements on the session's connection: the ORM's execute path cost more than
    # SQLite spent on each of them.
    connection = session.connection()
    citizen_ids = connection.execute(_NEW_CITIZENS, [n.citizen for n in batch]).scalars().all()
    letter_ids = list(
        connection.execute(
            _NEW_LETTERS,
            [{**n.letter, "citizen_id": c} for n, c in zip(batch, citizen_ids, strict=True)],
        ).scalars()
    )
    files = [
        {**a, "letter_id": letter_id}
        for n, letter_id in zip(batch, letter_ids, strict=True)
        for a in n.attachments
    ]
    if files:
        connection.execute(insert(_FILES), files)
    connection.execute(
        insert(_EVENTS),
        [{**n.event, "letter_id": i} for n, i in zip(batch, letter_ids, strict=True)],
    )
    return letter_ids


_NEW_CITIZENS = insert(_CITIZENS).returning(_CITIZENS.c.id, sort_by_parameter_order=True)
_NEW_LETTERS = insert(_LETTERS).returning(_LETTERS.c.id, sort_by_parameter_order=True)


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
    department_id: int | None = None,
    **detail: Any,
) -> Event:
    event = Event(
        letter_id=letter.id if letter else None,
        department_id=department_id,
        at=at,
        actor=actor,
        kind=kind,
        detail=detail,
    )
    session.add(event)
    return event


__all__ = [
    "Attachment",
    "Citizen",
    "LetterFilter",
    "NewLetter",
    "find_by_external_id",
    "find_by_tracking_number",
    "insert_letters",
    "list_letters",
    "record_event",
    "take_sequences",
    "tracking_numbers_of",
]
