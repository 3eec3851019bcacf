"""federation: peers, invites, outbox, heads, escrow, forks, nonces, contact log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 21:25:33.875247
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_log")),
    )
    with op.batch_alter_table("contact_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_log_at"), ["at"], unique=False)

    op.create_table(
        "escrow",
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("wire", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("via", sa.LargeBinary(length=32), nullable=True),
        sa.PrimaryKeyConstraint("origin", "seq", name=op.f("pk_escrow")),
        sa.UniqueConstraint("id", name=op.f("uq_escrow_id")),
    )
    with op.batch_alter_table("escrow", schema=None) as batch_op:
        batch_op.create_index("ix_escrow_received_at", ["received_at"], unique=False)

    op.create_table(
        "fork_evidence",
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("wire", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fork_evidence")),
    )
    with op.batch_alter_table("fork_evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fork_evidence_origin"), ["origin"], unique=False)

    op.create_table(
        "nonces",
        sa.Column("keyid", sa.LargeBinary(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("keyid", "nonce", name=op.f("pk_nonces")),
    )
    with op.batch_alter_table("nonces", schema=None) as batch_op:
        batch_op.create_index("ix_nonces_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "origin_heads",
        sa.Column("origin", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_origin_heads")),
    )
    op.create_table(
        "peers",
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("they_allied", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("last_contact_at", sa.BigInteger(), nullable=True),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_delivery_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_peers")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("peer", sa.LargeBinary(length=32), nullable=False),
        sa.Column("envelope_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["envelope_id"],
            ["envelopes.id"],
            name=op.f("fk_outbox_envelope_id_envelopes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["peer"], ["peers.node_id"], name=op.f("fk_outbox_peer_peers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("peer", "envelope_id", name=op.f("uq_outbox_peer")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_peer_id", ["peer", "id"], unique=False)

    op.create_table(
        "peer_invites",
        sa.Column("id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("used_by", sa.LargeBinary(length=32), nullable=True),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["members.id"], name=op.f("fk_peer_invites_created_by_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_peer_invites")),
    )


def downgrade() -> None:
    op.drop_table("peer_invites")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_peer_id")

    op.drop_table("outbox")
    op.drop_table("peers")
    op.drop_table("origin_heads")
    with op.batch_alter_table("nonces", schema=None) as batch_op:
        batch_op.drop_index("ix_nonces_expires_at")

    op.drop_table("nonces")
    with op.batch_alter_table("fork_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fork_evidence_origin"))

    op.drop_table("fork_evidence")
    with op.batch_alter_table("escrow", schema=None) as batch_op:
        batch_op.drop_index("ix_escrow_received_at")

    op.drop_table("escrow")
    with op.batch_alter_table("contact_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_log_at"))

    op.drop_table("contact_log")
