"""Typed table models. Alembic migrations in ``migrations/`` are the only way these change.

Times are unix seconds (BIGINT), as on the wire. Member records hold no IP address and no
user agent, ever; contact fields are stored encrypted.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AuditEntry", "Base", "Invite", "KeyEventRow", "Member", "Setting"]

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
