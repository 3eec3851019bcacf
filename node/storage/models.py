"""Typed table models. Alembic migrations in ``migrations/`` are the only way these change.

Times are unix seconds (BIGINT), as on the wire. Member records hold no IP address and no
user agent, ever; contact fields are stored encrypted.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Ballot",
    "Base",
    "GovernancePolicy",
    "Invite",
    "KeyEventRow",
    "LoginSession",
    "LoginThrottle",
    "Member",
    "Proposal",
    "ProposalOption",
    "Setting",
    "VoterRoll",
]

# Stable constraint names, so that migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Row ids: BIGINT on PostgreSQL; INTEGER on SQLite, where only that type auto-increments.
ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Setting(Base):
    """Small node-wide values: the node id, the name."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class KeyEventRow(Base):
    """Signed key events (SPEC §4), this node's and its peers', by node and position."""

    __tablename__ = "key_events"
    node_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    pos: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    wire: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[int] = mapped_column(BigInteger)


class Member(Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    real_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # member | organiser | admin
    status: Mapped[str] = mapped_column(String(16))  # pending | active | suspended | left
    password_hash: Mapped[str] = mapped_column(String(255))
    contact_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # AES-GCM sealed
    language: Mapped[str] = mapped_column(String(16), default="ar")
    created_at: Mapped[int] = mapped_column(BigInteger)


class Invite(Base):
    """An invite link; only a hash of its token is stored."""

    __tablename__ = "invites"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    uses_left: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[int | None] = mapped_column(ID, ForeignKey("members.id"))


class AuditEntry(Base):
    """Every admin action, by whom (a member, or the operator at the command line)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[int | None] = mapped_column(ID, ForeignKey("members.id"))
    actor: Mapped[str] = mapped_column(String(64))  # "member:<id>" or "cli"
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")


class LoginSession(Base):
    """A browser session; only a hash of the cookie's token is stored."""

    __tablename__ = "sessions"
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    member_id: Mapped[int] = mapped_column(ID, ForeignKey("members.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A personal API token; only its hash is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(ID, ForeignKey("members.id", ondelete="CASCADE"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)


class LoginThrottle(Base):
    """Failed logins per account (a keyed hash of the pseudonym): never per IP address."""

    __tablename__ = "login_throttle"
    account_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    failures: Mapped[int] = mapped_column(BigInteger)
    window_start: Mapped[int] = mapped_column(BigInteger)
    locked_until: Mapped[int] = mapped_column(BigInteger)


class GovernancePolicy(Base):
    """Who may issue calls and who decides endorsements, and the member-vote rule (one row)."""

    __tablename__ = "governance_policy"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    approval_required: Mapped[bool] = mapped_column(default=False)
    call_issuers: Mapped[str] = mapped_column(String(16), default="organisers")
    endorsement_by: Mapped[str] = mapped_column(String(16), default="vote")
    vote_method: Mapped[str] = mapped_column(String(16), default="majority")
    vote_fraction_num: Mapped[int | None] = mapped_column(BigInteger)
    vote_fraction_den: Mapped[int | None] = mapped_column(BigInteger)
    vote_quorum_num: Mapped[int] = mapped_column(BigInteger, default=1)
    vote_quorum_den: Mapped[int] = mapped_column(BigInteger, default=4)
    vote_hours: Mapped[int] = mapped_column(BigInteger, default=72)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Proposal(Base):
    """An internal decision: a question, its options, a rule, a window in time."""

    __tablename__ = "proposals"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    public_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    title: Mapped[str] = mapped_column(String(512))
    body: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))  # majority | supermajority | consent
    fraction_num: Mapped[int | None] = mapped_column(BigInteger)
    fraction_den: Mapped[int | None] = mapped_column(BigInteger)
    quorum_num: Mapped[int] = mapped_column(BigInteger)
    quorum_den: Mapped[int] = mapped_column(BigInteger)
    ballot: Mapped[str] = mapped_column(String(8))  # open | secret
    opens_at: Mapped[int] = mapped_column(BigInteger)
    closes_at: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16))  # scheduled | open | closed | cancelled
    created_by: Mapped[int | None] = mapped_column(ID, ForeignKey("members.id"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    call_id: Mapped[bytes | None] = mapped_column(LargeBinary(32))  # "do we join?" (issue 5)
    result: Mapped[bytes | None] = mapped_column(LargeBinary)  # signed decision.outcome
    closed_at: Mapped[int | None] = mapped_column(BigInteger)


class ProposalOption(Base):
    __tablename__ = "proposal_options"
    __table_args__ = (UniqueConstraint("proposal_id", "position"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ID, ForeignKey("proposals.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(512))


class Ballot(Base):
    """One ballot's choice. For a secret ballot it names no member and holds no time:
    ``voter_key`` is a keyed hash (the node's local secret) that lets a voter change their
    vote until close, and it is erased at close, so no query can join voter to choice."""

    __tablename__ = "ballots"
    __table_args__ = (UniqueConstraint("proposal_id", "voter_key"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ID, ForeignKey("proposals.id", ondelete="CASCADE"))
    voter_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    member_id: Mapped[int | None] = mapped_column(ID, ForeignKey("members.id"))  # open only
    choice: Mapped[str] = mapped_column(String(8))  # option | abstain | block
    option_position: Mapped[int | None] = mapped_column(BigInteger)


class VoterRoll(Base):
    """Who voted (never how); no time is kept, so it cannot be matched to ballots."""

    __tablename__ = "voter_roll"
    proposal_id: Mapped[int] = mapped_column(
        ID, ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(ID, ForeignKey("members.id"), primary_key=True)
