"""ballots: an index on (proposal_id, member_id), for a member's own open ballot and the
choices of a proposal

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 23:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ballots_proposal_id_member_id", "ballots", ["proposal_id", "member_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ballots_proposal_id_member_id", table_name="ballots")
