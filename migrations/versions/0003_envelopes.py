"""envelopes: every signed envelope the node holds, its own and other origins'

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:33:38.505584
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "envelopes",
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("audience", sa.String(length=80), nullable=False),
        sa.Column("wire", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "seq", name=op.f("pk_envelopes")),
        sa.UniqueConstraint("id", name=op.f("uq_envelopes_id")),
    )
    op.create_index("ix_envelopes_type", "envelopes", ["type"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_envelopes_type", table_name="envelopes")
    op.drop_table("envelopes")
