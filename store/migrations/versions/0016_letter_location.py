"""letters.latitude and longitude: where an Open311 report says the problem is

GeoReport v2 clients post lat/long (WGS84) with a request and read them back with it; they
were dropped. Six decimals (about 0.1 m) as numbers both databases store exactly; letters
already stored have none.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.add_column(sa.Column("latitude", sa.Numeric(9, 6), nullable=True))
        batch.add_column(sa.Column("longitude", sa.Numeric(9, 6), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.drop_column("longitude")
        batch.drop_column("latitude")
