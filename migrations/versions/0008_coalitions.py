"""coalitions: the coalitions this node knows, the coalition.* envelopes membership is
computed from, and each node's standing (SPEC §15)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 23:58:37.868984
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coalitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("coalition_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("founder", sa.LargeBinary(length=32), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("name", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.JSON(), nullable=True),
        sa.Column("seed", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalitions")),
        sa.UniqueConstraint("coalition_id", name=op.f("uq_coalitions_coalition_id")),
    )
    op.create_table(
        "coalition_events",
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("coalition", sa.LargeBinary(length=32), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.LargeBinary(length=32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["coalition"],
            ["coalitions.coalition_id"],
            name=op.f("fk_coalition_events_coalition_coalitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_events")),
    )
    with op.batch_alter_table("coalition_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coalition_events_coalition"), ["coalition"], unique=False
        )

    op.create_table(
        "coalition_members",
        sa.Column("coalition", sa.LargeBinary(length=32), nullable=False),
        sa.Column("node", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=True),
        sa.Column("invite_id", sa.LargeBinary(length=32), nullable=True),
        sa.Column("invited_at", sa.BigInteger(), nullable=True),
        sa.Column("join_id", sa.LargeBinary(length=32), nullable=True),
        sa.Column("leave_id", sa.LargeBinary(length=32), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["coalition"],
            ["coalitions.coalition_id"],
            name=op.f("fk_coalition_members_coalition_coalitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("coalition", "node", name=op.f("pk_coalition_members")),
    )
    with op.batch_alter_table("coalition_members", schema=None) as batch_op:
        batch_op.create_index("ix_coalition_members_node", ["node"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("coalition_members", schema=None) as batch_op:
        batch_op.drop_index("ix_coalition_members_node")

    op.drop_table("coalition_members")
    with op.batch_alter_table("coalition_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coalition_events_coalition"))

    op.drop_table("coalition_events")
    op.drop_table("coalitions")
