"""Typed table models. Alembic migrations in ``migrations/`` are the only way these change.

Times are unix seconds (BIGINT), as on the wire. Member records hold no IP address and no
user agent, ever; contact fields are stored encrypted.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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
    "ActivationRow",
    "Alliance",
    "ApiToken",
    "AuditEntry",
    "Ballot",
    "Base",
    "CallRow",
    "CallUpdateRow",
    "CoalitionEventRow",
    "CoalitionMember",
    "CoalitionRow",
    "ContactLogEntry",
    "EarlyCancel",
    "Endorsement",
    "EnvelopeRow",
    "EscrowEntry",
    "ForkEvidence",
    "GovernancePolicy",
    "Invite",
    "KeyEventRow",
    "LoginSession",
    "LoginThrottle",
    "Member",
    "Nonce",
    "Notification",
    "OriginHead",
    "OutboxEntry",
    "Peer",
    "PeerInvite",
    "Pledge",
    "Proposal",
    "ProposalOption",
    "Setting",
    "TallyRow",
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
    __table_args__ = (
        UniqueConstraint("proposal_id", "voter_key"),
        Index("ix_ballots_proposal_id_member_id", "proposal_id", "member_id"),  # "my vote"
    )
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


class EnvelopeRow(Base):
    """Every envelope this node holds, its own and other origins', by origin and sequence
    number (SPEC §5.2); ``wire`` is the signed bytes exactly as received or published.

    ``(origin, seq)`` is the primary key, so two writers can never both take one of this
    node's numbers, and a second envelope with a held number is a fork (kept in
    :class:`ForkEvidence`, never here). ``wire`` is None for a *withheld* entry: an envelope
    whose id this node learned (a catch-up answer, SPEC §14) but whose audience does not
    include it, so that the origin's chain still links."""

    __tablename__ = "envelopes"
    __table_args__ = (Index("ix_envelopes_type", "type"),)
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    type: Mapped[str] = mapped_column(String(128))
    audience: Mapped[str] = mapped_column(String(80))
    wire: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger)


class OriginHead(Base):
    """How far this node holds each origin's log without a gap: ``seq`` and its id."""

    __tablename__ = "origin_heads"
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    id: Mapped[bytes] = mapped_column(LargeBinary(32))


class EscrowEntry(Base):
    """A verified envelope that arrived before its predecessor, held (bounded) until the
    gap is filled by push or catch-up, then applied in order."""

    __tablename__ = "escrow"
    __table_args__ = (Index("ix_escrow_received_at", "received_at"),)
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    wire: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[int] = mapped_column(BigInteger)
    via: Mapped[bytes | None] = mapped_column(LargeBinary(32))  # the peer that sent it


class ForkEvidence(Base):
    """Proof that a node forked a log, shown to admins: ``kind`` ``envelope``, a validly
    signed envelope taking a sequence number the origin already used for another (SPEC
    §5.2); or ``key_event``, a validly signed key event at a position held with another
    digest (SPEC §4.6, ``seq`` is then the position and ``id`` the event digest)."""

    __tablename__ = "fork_evidence"
    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    wire: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[int] = mapped_column(BigInteger)


class Peer(Base):
    """A node this one was introduced to (SPEC §8.3), and the state of delivery to it.

    ``state``: ``introduced`` (keys exchanged, fingerprints not yet confirmed by an admin),
    ``allied``, ``blocked``, ``removed``. Delivery backs off per peer: ``next_attempt_at``
    and ``failures``; any authenticated contact from the peer resets them."""

    __tablename__ = "peers"
    node_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(512), default="")
    state: Mapped[str] = mapped_column(String(16))
    they_allied: Mapped[bool] = mapped_column(default=False)  # their peer.alliance says so
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    last_contact_at: Mapped[int | None] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(BigInteger, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)
    last_delivery_at: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(256))


class PeerInvite(Base):
    """A peering invite this node made (SPEC §8.3). The secret is not stored: it is derived
    from the local secret and the invite id, so a copy of the database alone cannot peer."""

    __tablename__ = "peer_invites"
    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)
    used_by: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_by: Mapped[int | None] = mapped_column(ID, ForeignKey("members.id"))


class OutboxEntry(Base):
    """One envelope still to deliver to one peer, written in the transaction that stored the
    envelope. Deleted once the peer acknowledged it (or refused it for good, or it expired)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("peer", "envelope_id"),
        Index("ix_outbox_peer_id", "peer", "id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    peer: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("peers.node_id", ondelete="CASCADE")
    )
    envelope_id: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("envelopes.id", ondelete="CASCADE")
    )
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)


class Nonce(Base):
    """Transport-signature nonces seen (SPEC §10.8), shared by every process of the node."""

    __tablename__ = "nonces"
    __table_args__ = (Index("ix_nonces_expires_at", "expires_at"),)
    keyid: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class ContactLogEntry(Base):
    """The bounded log of refused federation contacts (unknown or blocked senders, bad
    signatures): the only trace a node that was never introduced leaves here."""

    __tablename__ = "contact_log"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    node_id: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    code: Mapped[str] = mapped_column(String(64))


class Alliance(Base):
    """What another node last declared in ``peer.alliance`` (SPEC §8.3): ``node`` is allied
    with ``peer`` (``state`` ``allied``) or no longer (``ended``). ``seq`` is the declaring
    envelope's, so only a newer declaration replaces one. A relay forwards ``node``'s
    ``allies`` envelopes only to the peers ``node`` declared allied (SPEC §5.5, §14). This
    node's own alliances are the ``allied`` state of its peers, never rows here."""

    __tablename__ = "alliances"
    node: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    peer: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


# Calls to action (SPEC §8.5, §9). Calls, tallies, endorsements and activations are
# organisation-level facts from signed envelopes; pledges and notifications are members' own
# and never leave the node. Received facts name their call by its 32-byte id (``call_id``),
# since they may arrive before the call itself.


class CallRow(Base):
    """A call to action this node holds, its own or another node's, as amended so far.

    ``state``: open, cancelled, concluded, activated or void. ``stance`` is this node's own
    position on it: own (it issued it), undecided (admins or organisers to decide), voting (a
    member proposal is open), endorsed or declined. ``meeting_point`` and ``created_by`` are
    local and never signed. The ``tally_*`` columns are this node's own published tally and
    when the next one is due; ``recheck`` says tallies changed since activation was checked."""

    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    call_id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(80))
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    text: Mapped[dict[str, str]] = mapped_column(JSON)
    starts: Mapped[int | None] = mapped_column(BigInteger)
    ends: Mapped[int | None] = mapped_column(BigInteger)
    region: Mapped[str | None] = mapped_column(String(64))
    place: Mapped[str | None] = mapped_column(String(200))
    sectors: Mapped[list[str]] = mapped_column(JSON)
    regions: Mapped[list[str]] = mapped_column(JSON)
    pledges_needed: Mapped[int | None] = mapped_column(BigInteger)
    orgs_needed: Mapped[int | None] = mapped_column(BigInteger)
    deadline: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    stance: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger)
    amended_seq: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str | None] = mapped_column(String(16))  # of call.conclude
    note: Mapped[dict[str, str] | None] = mapped_column(JSON)  # cancel reason, conclusion
    activation: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    meeting_point: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ID, ForeignKey("members.id"))
    tally_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    tally_firm: Mapped[int] = mapped_column(BigInteger, default=0)
    tally_conditional: Mapped[int] = mapped_column(BigInteger, default=0)
    tally_at: Mapped[int | None] = mapped_column(BigInteger)
    tally_due_at: Mapped[int | None] = mapped_column(BigInteger, index=True)
    recheck: Mapped[bool] = mapped_column(default=False)


class EarlyCancel(Base):
    """A ``call.cancel`` for a call not held yet (SPEC §9.1): kept, and applied when the call
    arrives if its origin is the call's issuer."""

    __tablename__ = "call_early_cancels"
    call_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary(32))
    reason: Mapped[dict[str, str] | None] = mapped_column(JSON)
    received_at: Mapped[int] = mapped_column(BigInteger)


class CallUpdateRow(Base):
    """News the issuer posted about its call (``call.update``)."""

    __tablename__ = "call_updates"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    call: Mapped[int] = mapped_column(ID, ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    text: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Endorsement(Base):
    """An organisation's latest ``call.endorse`` or ``call.decline`` for a call, with how it
    decided (SPEC §8.5 decision summary); a later envelope of the origin replaces it."""

    __tablename__ = "call_endorsements"
    call_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    origin: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(8))  # endorse | decline
    envelope: Mapped[bytes] = mapped_column(LargeBinary(32))
    seq: Mapped[int] = mapped_column(BigInteger)  # the envelope's, to keep the latest
    by: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(16))
    electorate: Mapped[int] = mapped_column(BigInteger)
    turnout: Mapped[int] = mapped_column(BigInteger)
    yes: Mapped[int] = mapped_column(BigInteger)
    no: Mapped[int] = mapped_column(BigInteger)
    abstain: Mapped[int] = mapped_column(BigInteger)
    blocks: Mapped[int] = mapped_column(BigInteger)
    decision: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    note: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)


class TallyRow(Base):
    """A verified ``call.tally``, by envelope id. Two of one origin with one ``seq`` and
    different ids are equivocation (SPEC §9.2): both kept, both flagged."""

    __tablename__ = "call_tallies"
    __table_args__ = (Index("ix_call_tallies_call", "call_id", "origin", "seq"),)
    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    call_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    origin: Mapped[bytes] = mapped_column(LargeBinary(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    firm: Mapped[int] = mapped_column(BigInteger)
    conditional: Mapped[int] = mapped_column(BigInteger)
    bucket: Mapped[int] = mapped_column(BigInteger)
    k: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    equivocation: Mapped[bool] = mapped_column(default=False)


class ActivationRow(Base):
    """A ``call.activate``: ``valid`` once checked against held tallies (SPEC §9.3), or
    ``pending`` while its call or some of the tallies it names are not held yet."""

    __tablename__ = "call_activations"
    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    call_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    origin: Mapped[bytes] = mapped_column(LargeBinary(32))
    tallies: Mapped[bytes] = mapped_column(LargeBinary)  # the named ids, 32 bytes each
    pledges: Mapped[int] = mapped_column(BigInteger)
    orgs: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(8))  # valid | pending
    created_at: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger)


class Pledge(Base):
    """A member's pledge to a call: ``firm``, or ``conditional`` on the threshold. Only
    aggregates of these ever leave the node (``call.tally``)."""

    __tablename__ = "pledges"
    call: Mapped[int] = mapped_column(
        ID, ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ID, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Notification(Base):
    """An in-app notice for a member: a call was activated, cancelled, amended or voided."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_member", "member_id", "id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(ID, ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    call: Mapped[int] = mapped_column(ID, ForeignKey("calls.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    read_at: Mapped[int | None] = mapped_column(BigInteger)


# Coalitions (SPEC §15): named groups of nodes with their own audience. Membership is what
# this node computes from the coalition.* envelopes it holds (protocol.membership), kept in
# ``coalition_members`` and recomputed whenever one of them is applied.


class CoalitionRow(Base):
    """A coalition this node founded or was invited to. ``seed`` is the envelope whose
    content this node takes on trust (its ``coalition.found``, or the invite it joined by or
    was last invited with); ``name``, ``purpose``, ``founder`` and ``salt`` (the coalition id
    is ``H(domain || founder || salt)``) come from it."""

    __tablename__ = "coalitions"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    coalition_id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    founder: Mapped[bytes] = mapped_column(LargeBinary(32))
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    name: Mapped[dict[str, str]] = mapped_column(JSON)
    purpose: Mapped[dict[str, str] | None] = mapped_column(JSON)
    seed: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class CoalitionEventRow(Base):
    """A ``coalition.*`` envelope of a known coalition, as much as membership needs:
    ``kind`` found, invite, join or leave; ``subject`` the invitee of an invite or the invite
    a join uses."""

    __tablename__ = "coalition_events"
    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    coalition: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("coalitions.coalition_id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[bytes] = mapped_column(LargeBinary(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))
    subject: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[int] = mapped_column(BigInteger)


class CoalitionMember(Base):
    """A node's standing in a coalition as this node computes it: ``state`` member, invited
    or left; ``since`` the seq of its found or join; the envelope ids of the invite that
    admitted it (or is open), its join and its leave."""

    __tablename__ = "coalition_members"
    __table_args__ = (Index("ix_coalition_members_node", "node"),)
    coalition: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("coalitions.coalition_id", ondelete="CASCADE"),
        primary_key=True,
    )  # fmt: skip
    node: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    since: Mapped[int | None] = mapped_column(BigInteger)
    invite_id: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    invited_at: Mapped[int | None] = mapped_column(BigInteger)
    join_id: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    leave_id: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    updated_at: Mapped[int] = mapped_column(BigInteger)
