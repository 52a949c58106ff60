"""`hotline pii rotate`: every PII value and lookup hash rewritten under the current key (and
phone hashes in the E.164 form, letters' mentioned phones noted, for rows stored before
migration 0018); and the check at start that the keys read what is stored.

Batches of rows by id, each in its own transaction (rows locked on PostgreSQL, the write
lock held on SQLite), so the gateway keeps serving; a row already under the current key is
left alone, so a second run changes nothing and an interrupted run just runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    Table,
    Text,
    column,
    delete,
    distinct,
    func,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.sql.expression import ColumnElement, TableClause

from store.models import Base, Letter, LetterPhone, PhoneRehash, note_phones
from store.pii import LOOKUPS, Encrypted, Keyring, keyring_of

log = logging.getLogger(__name__)

TABLES = ("citizens", "letters")


# Told each batch's table and row count as it commits (a progress bar's feed).
Progress = Callable[[str, int], object]


def rotate(
    engine: Engine, batch_size: int = 500, progress: Progress | None = None
) -> dict[str, int]:
    """Rows rewritten per table (0 everywhere when all is under the current key already);
    ``letter_phones``: letters whose mentioned phones were noted again."""
    keyring = keyring_of(engine.dialect)
    told = progress or (lambda _table, _rows: None)
    changed = {}
    for name in TABLES:
        changed[name] = _rotate(engine, keyring, Base.metadata.tables[name], batch_size, told)
        if name == "citizens":
            # Every citizen's phone hash is now of the E.164 form: stop looking up the old.
            with engine.begin() as conn:
                conn.execute(delete(PhoneRehash).where(PhoneRehash.table_name == name))
    changed["letter_phones"] = _rekey_phones(engine, keyring, batch_size, told) + _note_old(
        engine, batch_size, told
    )
    return changed


def rows_to_read(engine: Engine) -> int:
    """How many rows rotate reads: those holding any PII value, the letters whose phones
    are noted under another key, and those stored before their phones were noted."""
    keyring = keyring_of(engine.dialect)
    with engine.connect() as conn:
        pii = sum(
            conn.execute(
                select(func.count()).where(_has_pii(Base.metadata.tables[name]))
            ).scalar_one()
            for name in TABLES
        )
        stale = conn.execute(
            select(func.count(distinct(LetterPhone.letter_id))).where(
                LetterPhone.key_id != keyring.current
            )
        ).scalar_one()
        return pii + stale + _left(conn, "letters")


def old_phone_forms(conn: Connection) -> bool:
    """Whether citizens' phone hashes of the form before E.164 remain (until `hotline db
    upgrade` or `hotline pii rotate` has recomputed them): lookups then try that form too."""
    found = conn.execute(select(PhoneRehash.table_name).where(PhoneRehash.table_name == "citizens"))
    return found.first() is not None


def rehash_phones(engine: Engine, batch_size: int = 500, progress: Progress | None = None) -> int:
    """What migration 0018 leaves to do: the phone hashes of the citizens stored before it
    recomputed in the E.164 form, and the phones the letters stored before it give noted.
    In batches, each its own transaction, how far it got kept, so the gateway keeps serving
    and an interrupted run goes on from there. Rows done (0 when none were left)."""
    keyring = keyring_of(engine.dialect)
    told = progress or (lambda _table, _rows: None)

    def rehash(conn: Connection, rows: Sequence[Row[Any]]) -> None:
        for row in rows:
            phone = keyring.decrypt(row.phone, "citizens.phone")
            if (wanted := keyring.lookup_hash("phone", phone)) != row.phone_hash:
                conn.execute(update(raw).where(raw.c.id == row.id).values(phone_hash=wanted))

    # The stored text as it is (SQLAlchemy compares the columns of a cached statement, which
    # the encrypted type refuses): decrypted here.
    raw = table("citizens", column("id"), column("phone", Text), column("phone_hash", Text))
    citizens = select(raw).where(raw.c.phone.is_not(None))
    redone = _redo_marked(engine, "citizens", citizens, raw.c.id, rehash, batch_size, told)
    return redone + _note_old(engine, batch_size, told)


def rows_to_rehash(engine: Engine) -> int:
    """How many rows rehash_phones has left to read."""
    with engine.connect() as conn:
        return _left(conn, "citizens") + _left(conn, "letters")


def _left(conn: Connection, name: str) -> int:
    marked = conn.execute(
        select(PhoneRehash.done_through, PhoneRehash.upto).where(PhoneRehash.table_name == name)
    ).first()
    if marked is None:
        return 0
    ids = Base.metadata.tables[name].c.id
    return conn.execute(
        select(func.count()).where(ids > marked.done_through, ids <= marked.upto)
    ).scalar_one()


_WORDS = select(Letter.id, Letter.received_at, Letter.subject, Letter.text, Letter.transcript)
LETTER_IDS = Base.metadata.tables["letters"].c.id


def _rekey_phones(engine: Engine, keyring: Keyring, batch_size: int, progress: Progress) -> int:
    """Letters' mentioned phones noted under another key, noted again (from the letter's
    words: only the hash is kept) under the current one."""
    noted = 0
    while True:
        with engine.begin() as conn:
            stale = (
                select(LetterPhone.letter_id)
                .distinct()
                .where(LetterPhone.key_id != keyring.current)
                .order_by(LetterPhone.letter_id)
                .limit(batch_size)
                .scalar_subquery()
            )
            letters = conn.execute(_WORDS.where(Letter.id.in_(stale)).with_for_update()).all()
            if not letters:
                return noted
            note_phones(conn, letters)
            noted += len(letters)
        progress("letter_phones", len(letters))


def _note_old(engine: Engine, batch_size: int, progress: Progress) -> int:
    """The phones the letters stored before migration 0018 give, noted."""
    return _redo_marked(
        engine, "letters", _WORDS, LETTER_IDS, note_phones, batch_size, progress, "letter_phones"
    )


def _redo_marked(
    engine: Engine,
    name: str,
    rows: Select[*tuple[Any, ...]],
    ids: ColumnElement[int],
    redo: Callable[[Connection, Sequence[Row[Any]]], object],
    batch_size: int,
    progress: Progress,
    told: str | None = None,
) -> int:
    """The rows of table ``name`` its phone_rehash row still marks, redone a batch at a time
    in id order, moving the mark on with each; the mark is deleted when none are left."""
    mark = PhoneRehash.table_name == name
    done = 0
    while True:
        with engine.begin() as conn:
            left = conn.execute(
                select(PhoneRehash.done_through, PhoneRehash.upto).where(mark).with_for_update()
            ).first()
            if left is None:
                return done
            batch = conn.execute(
                rows.where(ids > left.done_through, ids <= left.upto)
                .order_by(ids)
                .limit(batch_size)
                .with_for_update()
            ).all()
            if batch:
                redo(conn, batch)
                conn.execute(update(PhoneRehash).where(mark).values(done_through=batch[-1].id))
            else:
                conn.execute(delete(PhoneRehash).where(mark))
        done += len(batch)
        if batch:
            progress(told or name, len(batch))


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
        if old_phone_forms(conn) or _left(conn, "letters"):
            log.warning(
                "phone lookup hashes stored before migration 0018 are of the old form (last 11 "
                "digits): lookups try both until `hotline db upgrade` (or `hotline pii rotate`) "
                "recomputes them"
            )


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
