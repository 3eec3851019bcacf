"""alliances: what other nodes declared in peer.alliance, for relaying `allies` envelopes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alliances",
        sa.Column("node", sa.LargeBinary(length=32), nullable=False),
        sa.Column("peer", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node", "peer", name=op.f("pk_alliances")),
    )


def downgrade() -> None:
    op.drop_table("alliances")
