"""citizens' PII and letters.raw encrypted at rest; keyed hashes to look up phone and e-mail

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

Existing rows are encrypted here, under the current key of the engine's keyring (the
gateway's HOTLINE_PII_KEYS or pii.key_file; store/pii.py).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from store.pii import Keyring, keyring_of

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The PII columns that were shorter than a ciphertext (address and raw were Text already).
WIDENED = {
    "name": sa.String(200),
    "phone": sa.String(40),
    "email": sa.String(320),
    "id_number": sa.String(40),
    "ip": sa.String(45),
}
CITIZENS = ("name", "phone", "email", "id_number", "address", "ip")
LOOKUPS = ("phone", "email")
BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("citizens") as batch_op:
        for name, old in WIDENED.items():
            batch_op.alter_column(name, existing_type=old, type_=sa.Text(), existing_nullable=True)
        for kind in LOOKUPS:
            batch_op.add_column(sa.Column(f"{kind}_hash", sa.String(length=64), nullable=True))
            batch_op.create_index(op.f(f"ix_citizens_{kind}_hash"), [f"{kind}_hash"])

    def seal(keyring: Keyring, table: str, row: dict[str, str | None]) -> dict[str, str | None]:
        sealed = {
            name: None if value is None else keyring.encrypt(value, f"{table}.{name}")
            for name, value in row.items()
        }
        if table == "citizens":
            for kind in LOOKUPS:
                sealed[f"{kind}_hash"] = keyring.lookup_hash(kind, row[kind])
        return sealed

    _rewrite("citizens", CITIZENS, seal)
    _rewrite("letters", ("raw",), seal)


def downgrade() -> None:
    def open_(keyring: Keyring, table: str, row: dict[str, str | None]) -> dict[str, str | None]:
        return {
            name: None if value is None else keyring.decrypt(value, f"{table}.{name}")
            for name, value in row.items()
        }

    _rewrite("citizens", CITIZENS, open_)
    _rewrite("letters", ("raw",), open_)
    with op.batch_alter_table("citizens") as batch_op:
        for kind in LOOKUPS:
            batch_op.drop_index(op.f(f"ix_citizens_{kind}_hash"))
            batch_op.drop_column(f"{kind}_hash")
        for name, old in WIDENED.items():
            batch_op.alter_column(name, existing_type=sa.Text(), type_=old, existing_nullable=True)


Change = Callable[[Keyring, str, dict[str, str | None]], dict[str, str | None]]


def _rewrite(table_name: str, columns: tuple[str, ...], change: Change) -> None:
    """Every row with a value in ``columns``, by id in batches; the keys are asked for only
    when there is a row (an empty database migrates without them)."""
    bind = op.get_bind()
    source = sa.table(table_name, sa.column("id"), *(sa.column(name, sa.Text) for name in columns))
    keyring: Keyring | None = None
    last = 0
    while True:
        rows = bind.execute(
            sa.select(source)
            .where(source.c.id > last, sa.or_(*(source.c[name].is_not(None) for name in columns)))
            .order_by(source.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        keyring = keyring or keyring_of(bind.dialect)
        changed = [
            {"row_id": row.id, **change(keyring, table_name, {c: row._mapping[c] for c in columns})}
            for row in rows
        ]
        target = sa.table(
            table_name, sa.column("id"), *(sa.column(k) for k in changed[0] if k != "row_id")
        )
        # One UPDATE per batch; its SET columns are the keys of the rows' values.
        bind.execute(sa.update(target).where(target.c.id == sa.bindparam("row_id")), changed)
        last = rows[-1].id
