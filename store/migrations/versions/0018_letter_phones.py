"""letter_phones, and phone lookup hashes taken of the E.164 form

A phone number written in a letter's words counts for 并单 like the sender's own: each is
kept as a keyed hash (never the number) beside the letter's time of receipt, read newest
first from one index. Phone hashes were taken of a number's last 11 digits, which told
010-12345678 from +86 10 12345678; they are now taken of its E.164 form. The rows stored
before this migration are noted in phone_rehash: `hotline pii rotate` recomputes their
hashes and notes their letters' numbers in batches, and until it has, lookups try the old
form too (docs/privacy.md).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "letter_phones",
        sa.Column("letter_id", Id, nullable=False),
        sa.Column("phone_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["letters.id"],
            name="fk_letter_phones_letter_id_letters",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("letter_id", "phone_hash", name="pk_letter_phones"),
    )
    op.create_index(
        "ix_letter_phones_hash_received", "letter_phones", ["phone_hash", "received_at"]
    )
    rehash = op.create_table(
        "phone_rehash",
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("done_through", Id, nullable=False),
        sa.Column("upto", Id, nullable=False),
        sa.PrimaryKeyConstraint("table_name", name="pk_phone_rehash"),
    )
    conn = op.get_bind()
    last_citizen = conn.execute(sa.text("SELECT max(id) FROM citizens")).scalar()
    last_letter = conn.execute(sa.text("SELECT max(id) FROM letters")).scalar()
    rows = [
        {"table_name": name, "done_through": 0, "upto": last}
        for name, last in (("citizens", last_citizen), ("letters", last_letter))
        if last is not None
    ]
    if rows:
        op.bulk_insert(rehash, rows)


def downgrade() -> None:
    op.drop_table("phone_rehash")
    op.drop_index("ix_letter_phones_hash_received", table_name="letter_phones")
    op.drop_table("letter_phones")
