"""`hotline pii rotate`: every PII value and lookup hash rewritten under the current key;
and the check at start that the keys read what is stored.

Batches of rows by id, each in its own transaction (rows locked on PostgreSQL, the write
lock held on SQLite), so the gateway keeps serving; a row already under the current key is
left alone, so a second run changes nothing and an interrupted run just runs again.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, Table, Text, column, func, or_, select, table, update
from sqlalchemy.sql.expression import ColumnElement, TableClause

from store.models import Base
from store.pii import LOOKUPS, Encrypted, Keyring, keyring_of

TABLES = ("citizens", "letters")


# Told each batch's table and row count as it commits (a progress bar's feed).
Progress = Callable[[str, int], object]


def rotate(
    engine: Engine, batch_size: int = 500, progress: Progress | None = None
) -> dict[str, int]:
    """Rows rewritten per table (0 everywhere when all is under the current key already)."""
    keyring = keyring_of(engine.dialect)
    told = progress or (lambda _table, _rows: None)
    return {
        name: _rotate(engine, keyring, Base.metadata.tables[name], batch_size, told)
        for name in TABLES
    }


def rows_to_read(engine: Engine) -> int:
    """How many rows rotate reads: those holding any PII value."""
    with engine.connect() as conn:
        return sum(
            conn.execute(
                select(func.count()).where(_has_pii(Base.metadata.tables[name]))
            ).scalar_one()
            for name in TABLES
        )


def _has_pii(model: Table) -> ColumnElement[bool]:
    return or_(*(c.is_not(None) for c in model.c if isinstance(c.type, Encrypted)))


def check_keys(engine: Engine) -> None:
    """Fail at start, not at the first read, when the newest citizen does not decrypt: a
    node started with keys of its own (another key file) beside nodes sharing a database."""
    citizens = Base.metadata.tables["citizens"]
    with engine.connect() as conn:
        conn.execute(
            select(citizens).where(_has_pii(citizens)).order_by(citizens.c.id.desc()).limit(1)
        ).all()


def _rotate(
    engine: Engine, keyring: Keyring, model: Table, batch_size: int, progress: Progress
) -> int:
    purposes = {c.name: c.type.purpose for c in model.c if isinstance(c.type, Encrypted)}
    hashed = [kind for kind in LOOKUPS if f"{kind}_hash" in model.c]
    # The stored text as it is: no decrypting type in between.
    raw: TableClause = table(
        model.name,
        column("id"),
        *(column(name, Text) for name in purposes),
        *(column(f"{kind}_hash", Text) for kind in hashed),
    )
    changed = 0
    last = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(raw)
                .where(raw.c.id > last, or_(*(raw.c[name].is_not(None) for name in purposes)))
                .order_by(raw.c.id)
                .limit(batch_size)
                .with_for_update()
            ).all()
            if not rows:
                return changed
            for row in rows:
                stored = row._mapping
                values: dict[str, str | None] = {}
                plain: dict[str, str] = {}
                for name, purpose in purposes.items():
                    if stored[name] is None:
                        continue
                    plain[name] = keyring.decrypt(stored[name], purpose)
                    if keyring.key_id(stored[name]) != keyring.current:
                        values[name] = keyring.encrypt(plain[name], purpose)
                for kind in hashed:
                    wanted = keyring.lookup_hash(kind, plain.get(kind))
                    if stored[f"{kind}_hash"] != wanted:
                        values[f"{kind}_hash"] = wanted
                if values:
                    conn.execute(update(raw).where(raw.c.id == row.id).values(values))
                    changed += 1
            last = rows[-1].id
        progress(model.name, len(rows))
