"""calls to action: calls, early cancels, updates, endorsements, tallies, activations,
pledges and notifications

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 21:33:04.256561
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_activations",
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("call_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("tallies", sa.LargeBinary(), nullable=False),
        sa.Column("pledges", sa.BigInteger(), nullable=False),
        sa.Column("orgs", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_activations")),
    )
    with op.batch_alter_table("call_activations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_activations_call_id"), ["call_id"], unique=False)

    op.create_table(
        "call_early_cancels",
        sa.Column("call_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("envelope", sa.LargeBinary(length=32), nullable=False),
        sa.Column("reason", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "origin", name=op.f("pk_call_early_cancels")),
    )
    op.create_table(
        "call_endorsements",
        sa.Column("call_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("envelope", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("by", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("electorate", sa.BigInteger(), nullable=False),
        sa.Column("turnout", sa.BigInteger(), nullable=False),
        sa.Column("yes", sa.BigInteger(), nullable=False),
        sa.Column("no", sa.BigInteger(), nullable=False),
        sa.Column("abstain", sa.BigInteger(), nullable=False),
        sa.Column("blocks", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.LargeBinary(length=32), nullable=True),
        sa.Column("note", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "origin", name=op.f("pk_call_endorsements")),
    )
    op.create_table(
        "call_tallies",
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("call_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("firm", sa.BigInteger(), nullable=False),
        sa.Column("conditional", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("k", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("equivocation", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_tallies")),
    )
    with op.batch_alter_table("call_tallies", schema=None) as batch_op:
        batch_op.create_index("ix_call_tallies_call", ["call_id", "origin", "seq"], unique=False)

    op.create_table(
        "calls",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("audience", sa.String(length=80), nullable=False),
        sa.Column("title", sa.JSON(), nullable=False),
        sa.Column("text", sa.JSON(), nullable=False),
        sa.Column("starts", sa.BigInteger(), nullable=True),
        sa.Column("ends", sa.BigInteger(), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("place", sa.String(length=200), nullable=True),
        sa.Column("sectors", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("pledges_needed", sa.BigInteger(), nullable=True),
        sa.Column("orgs_needed", sa.BigInteger(), nullable=True),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stance", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("amended_seq", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("note", sa.JSON(), nullable=True),
        sa.Column("activation", sa.LargeBinary(length=32), nullable=True),
        sa.Column("meeting_point", sa.Text(), nullable=True),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("tally_seq", sa.BigInteger(), nullable=False),
        sa.Column("tally_firm", sa.BigInteger(), nullable=False),
        sa.Column("tally_conditional", sa.BigInteger(), nullable=False),
        sa.Column("tally_at", sa.BigInteger(), nullable=True),
        sa.Column("tally_due_at", sa.BigInteger(), nullable=True),
        sa.Column("recheck", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["members.id"], name=op.f("fk_calls_created_by_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_calls_call_id")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_origin"), ["origin"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_tally_due_at"), ["tally_due_at"], unique=False)

    op.create_table(
        "call_updates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("envelope", sa.LargeBinary(length=32), nullable=False),
        sa.Column("text", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call"], ["calls.id"], name=op.f("fk_call_updates_call_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_updates")),
        sa.UniqueConstraint("envelope", name=op.f("uq_call_updates_envelope")),
    )
    with op.batch_alter_table("call_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_updates_call"), ["call"], unique=False)

    op.create_table(
        "notifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("call", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("read_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call"], ["calls.id"], name=op.f("fk_notifications_call_calls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_notifications_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_member", ["member_id", "id"], unique=False)

    op.create_table(
        "pledges",
        sa.Column("call", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call"], ["calls.id"], name=op.f("fk_pledges_call_calls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_pledges_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call", "member_id", name=op.f("pk_pledges")),
    )


def downgrade() -> None:
    op.drop_table("pledges")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_member")

    op.drop_table("notifications")
    with op.batch_alter_table("call_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_updates_call"))

    op.drop_table("call_updates")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_tally_due_at"))
        batch_op.drop_index(batch_op.f("ix_calls_origin"))

    op.drop_table("calls")
    with op.batch_alter_table("call_tallies", schema=None) as batch_op:
        batch_op.drop_index("ix_call_tallies_call")

    op.drop_table("call_tallies")
    op.drop_table("call_endorsements")
    op.drop_table("call_early_cancels")
    with op.batch_alter_table("call_activations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_activations_call_id"))

    op.drop_table("call_activations")
