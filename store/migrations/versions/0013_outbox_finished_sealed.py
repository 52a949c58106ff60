"""outbox: finished messages keep no one's words or address in clear

A sent (or delivered, undelivered, trying) message keeps only its medium's references, its
address sealed; a given-up one is sealed whole (store/outbox.py), under the current key of
the engine's keyring. Messages still waiting are left as they are.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

from store.outbox import purge, seal
from store.pii import keyring_of

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SENT = ("sent", "delivered", "undelivered", "trying")


def upgrade() -> None:
    bind = op.get_bind()
    keyring = keyring_of(bind.dialect)
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.BigInteger),
        sa.column("kind", sa.String),
        sa.column("status", sa.String),
        sa.column("destination", sa.Text),
        sa.column("payload", sa.JSON),
    )
    finished = sa.select(outbox).where(outbox.c.status.in_([*SENT, "failed"]))
    for found in bind.execute(finished).mappings().all():
        row = SimpleNamespace(**found)
        (purge if row.status in SENT else seal)(row, keyring)
        bind.execute(
            outbox.update()
            .where(outbox.c.id == row.id)
            .values(destination=row.destination, payload=row.payload)
        )


def downgrade() -> None:
    """What was purged is gone; sealed rows stay sealed (the code before reads them as
    finished messages, which it never sends again except a replayed webhook)."""
