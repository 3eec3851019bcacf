"""Planning one inbox batch: every check of SPEC §6.3 and the policy of §5.5 and §14, then each
origin's chain (:mod:`node.federation.chain`). Pure CPU, no I/O: it works from a
:class:`View` the inbox read in one short read transaction, and returns a :class:`Plan` that
the inbox writes in one transaction. Verifying signatures, the bulk of the work, therefore
never holds the database's write lock.

Per item, in order (the first that applies answers it):

1. decoding (SPEC §3, §5) - done when the item is read, see :func:`decode_item`;
2. an id held already (or twice in the batch) → ``duplicate``; waiting in escrow → ``held``.
   Held envelopes were verified when they were stored, so they are not verified again;
3. the origin's key log unknown → ``unknown_origin``; the origin blocked here → ``blocked``;
4. :func:`protocol.verify` (origin, key position and seal, from the future, expired,
   signature);
5. an envelope of this node's own origin that it does not hold → ``fork`` (kept as evidence:
   somebody signs with this node's key);
6. audience (SPEC §5.5): ``node:<other>``, or ``allies`` of an origin that is not a peer here
   and never declared this node allied, or ``coalition:<id>`` as
   :mod:`node.federation.coalition_policy` refuses (SPEC §15.4) → ``not_for_us``.

An envelope that fails at 4 as ``expired`` but whose signature holds, or that fails at 6,
still proves its id: it may fill its place in the chain as a withheld row (no bytes kept),
so that one envelope nobody may read never blocks its origin's chain for good.

An envelope waiting in escrow passed these checks when it arrived; when the chain reaches it,
it is checked again against what holds now: its key (a seal learned since voids it), its
expiry, and its audience (this node may have left the coalition meanwhile, or no longer
place the origin): one no longer for this node takes its place withheld, as at arrival.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from node.federation import coalition_policy
from node.federation.chain import Link, walk
from node.storage.inbox import EscrowRef
from node.storage.peers import ALLIED, BLOCKED, INTRODUCED
from protocol import (
    ErrorCode,
    KeyState,
    ProtocolError,
    SignatureError,
    SignedEnvelope,
    verify,
    verify_signature,
)

__all__ = [
    "MAX_SKEW",
    "Checked",
    "Item",
    "Plan",
    "Status",
    "View",
    "decode_escrowed",
    "decode_item",
    "plan_batch",
    "preverify",
]

MAX_SKEW: Final = 300  # SPEC §6.3 step 4
NO_PREV: Final = b""  # never an id: an escrowed envelope whose bytes were not loaded


class Status:
    """Per-item answers of the inbox (SPEC §14.3); error codes are SPEC §12's."""

    OK: Final = "ok"
    DUPLICATE: Final = "duplicate"
    HELD: Final = "held"
    UNLINKED: Final = "unlinked"  # a withheld entry nothing confirmed (log pages only)
    UNKNOWN_ORIGIN: Final = "unknown_origin"
    BLOCKED: Final = "blocked"
    NOT_FOR_US: Final = "not_for_us"
    AUDIENCE_UNSUPPORTED: Final = "audience_unsupported"
    FORK: Final = "fork"
    ESCROW_FULL: Final = "escrow_full"


@dataclass(slots=True)
class Item:
    """One decoded item: a signed envelope, or (log pages) a withheld entry."""

    index: int
    origin: bytes
    seq: int
    id: bytes
    raw: bytes | None  # the signed bytes as received; None for a withheld entry
    signed: SignedEnvelope | None
    audience: str = ""  # the envelope's fields read often, read once
    type: str = ""


def decode_item(index: int, raw: bytes) -> Item | str:
    """The item, or the code of the decoding error (SPEC §3, §5)."""
    try:
        signed = SignedEnvelope.from_bytes(raw)
    except ProtocolError as exc:
        return str(exc.code)
    env = signed.envelope
    fields = env.fields
    return Item(index, fields["origin"], fields["seq"], env.id, raw, signed, fields["aud"],
                fields["type"])  # fmt: skip


def decode_escrowed(raw: bytes) -> Item:
    """An escrowed envelope (decoded when it arrived: raises only if the row is damaged)."""
    signed = SignedEnvelope.from_bytes(raw)
    fields = signed.envelope.fields
    return Item(-1, fields["origin"], fields["seq"], signed.envelope.id, raw, signed,
                fields["aud"], fields["type"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Checked:
    """An item's verification result (SPEC §6.3) under the key state at ``position``."""

    position: int
    head: bytes
    status: str


def preverify(
    items: Iterable[Item],
    states: Mapping[bytes, KeyState | None],
    held: Collection[bytes],
    *,
    now: int,
) -> dict[int, Checked]:
    """Verify the items that may need it (signed, of a known origin, not held), before the
    batch takes its turn at the database: the signatures, the bulk of the work, are then
    checked while the batch before it is being written."""
    checked = {}
    for item in items:
        state = states.get(item.origin)
        if item.signed is not None and state is not None and item.id not in held:
            status = _verify(item.signed, state, now)
            checked[item.index] = Checked(state.position, state.head, status)
    return checked


@dataclass(slots=True)
class View:
    """What the database said, read once per batch."""

    self_id: bytes
    states: dict[bytes, KeyState | None]  # origin -> verified key state
    peer_states: dict[bytes, str]  # origins and allied peers -> their state as peers here
    declared_us: set[bytes]  # origins that declared this node allied
    held: set[bytes]  # ids of the batch already held
    heads: dict[bytes, tuple[int, bytes]]
    escrow: dict[bytes, dict[int, EscrowRef]]  # origin -> seq -> escrowed envelope
    escrow_items: dict[tuple[bytes, int], Item]  # the ones the chain may reach, decoded
    checked: dict[int, Checked] = field(default_factory=dict)  # verified before (preverify)
    # coalition -> node -> state, for the batch's coalition audiences (SPEC §15.4)
    coalitions: dict[bytes, dict[bytes, str]] = field(default_factory=dict)
    sender: bytes = b""  # the peer that pushed the batch or served the page

    @property
    def escrow_ids(self) -> set[bytes]:
        return {ref.id for refs in self.escrow.values() for ref in refs.values()}


@dataclass(slots=True)
class Plan:
    """What to write: links to store (with their origin), escrow changes, heads, forks."""

    accepted: list[tuple[bytes, Link]] = field(default_factory=list)
    heads: dict[bytes, tuple[int, bytes] | None] = field(default_factory=dict)
    to_escrow: list[tuple[bytes, Link]] = field(default_factory=list)
    unescrow: list[tuple[bytes, int]] = field(default_factory=list)  # accepted or void
    evidence: list[tuple[bytes, Link]] = field(default_factory=list)  # proven forks
    fork_checks: list[tuple[bytes, Link]] = field(default_factory=list)  # seq <= head
    # (origin, head seq, the link after it, whether the head is signed: None if not known)
    broken: list[tuple[bytes, int, Link, bool | None]] = field(default_factory=list)


def plan_batch(
    items: Iterable[Item], view: View, statuses: list[str], *, now: int, trusted: bytes | None
) -> Plan:
    """Check every item, then order each origin's chain; fills ``statuses`` as it goes.
    ``trusted``: the origin whose withheld entries are taken on its word (it sent them)."""
    plan = Plan()
    per_origin: dict[bytes, list[Link]] = {}
    seen: set[bytes] = set()
    escrow_ids = view.escrow_ids
    for item in items:
        if item.id in seen or item.id in view.held:
            statuses[item.index] = Status.DUPLICATE
        elif item.id in escrow_ids:
            statuses[item.index] = Status.HELD
        else:
            link = _check(item, view, statuses, now, plan)
            if link is not None:
                per_origin.setdefault(item.origin, []).append(link)
        seen.add(item.id)
    for origin, links in per_origin.items():
        _order(origin, links, view, statuses, plan, now=now, trusted=trusted == origin)
    return plan


def _check(item: Item, view: View, statuses: list[str], now: int, plan: Plan) -> Link | None:
    """The item as a link of its origin's chain, or None with its status set."""
    signed = item.signed
    if signed is None:  # a withheld entry: an id claimed for a place, nothing to verify
        if view.peer_states.get(item.origin) == BLOCKED:
            statuses[item.index] = Status.BLOCKED  # nor may it release what waits in escrow
            return None
        return Link(item.seq, item.id, None, verified=False, wire=None, index=item.index)
    state = view.states.get(item.origin)
    refusal = _policy(item, state, view)
    if refusal is not None:
        statuses[item.index] = refusal
        return None
    assert state is not None  # noqa: S101 - _policy refused an unknown origin
    done = view.checked.get(item.index)
    if done is not None and (done.position, done.head) == (state.position, state.head):
        status = done.status
    else:  # not verified before, or the key log changed since
        status = _verify(signed, state, now)
    if status not in (Status.OK, ErrorCode.EXPIRED):
        statuses[item.index] = status
        return None
    link = Link(
        item.seq, item.id, signed.envelope.prev, verified=True, wire=item.raw, signed=signed,
        index=item.index, status=status, type=item.type, audience=item.audience,
        created=signed.envelope.created,
    )  # fmt: skip
    if item.origin == view.self_id:  # verified, ours, and not held: our key signs for others
        statuses[item.index] = link.status = Status.FORK
        plan.evidence.append((item.origin, link))
        return None
    if status == ErrorCode.EXPIRED or not _for_us(item, view, view.sender):
        link.wire = None  # its place in the chain, without the envelope
        link.status = status if status != Status.OK else Status.NOT_FOR_US
    return link


def _policy(item: Item, state: KeyState | None, view: View) -> str | None:
    if state is None:
        return Status.UNKNOWN_ORIGIN
    if view.peer_states.get(item.origin) == BLOCKED:
        return Status.BLOCKED
    return None


def _verify(signed: SignedEnvelope, state: KeyState, now: int) -> str:
    """``ok``; ``expired`` when only the expiry fails (the signature holds); else the code."""
    try:
        verify(signed, state, now=now, max_skew=MAX_SKEW)
    except ProtocolError as exc:
        if exc.code != ErrorCode.EXPIRED:
            return str(exc.code)
        envelope = signed.envelope
        key = state.key_for(envelope.kpos, envelope.seq)
        if not verify_signature(key, signed.sig, envelope.signing_input):
            return str(ErrorCode.BAD_SIGNATURE)
        return str(exc.code)
    return Status.OK


def _for_us(item: Item, view: View, sender: bytes) -> bool:
    """SPEC §5.5 for the receiving end; ``sender``: the peer that pushed the envelope or
    served it in a log page (b"" if not known)."""
    audience = item.audience
    if audience == "public":
        return True
    if audience.startswith("coalition:"):
        return item.signed is not None and coalition_policy.admits(
            item.signed.envelope, sender=sender, self_id=view.self_id,
            states=view.coalitions, peers=view.peer_states,
        )  # fmt: skip
    if audience == "allies":
        origin = item.origin
        return view.peer_states.get(origin) in (INTRODUCED, ALLIED) or origin in view.declared_us
    return audience == "node:" + view.self_id.hex()


def _order(
    origin: bytes,
    links: list[Link],
    view: View,
    statuses: list[str],
    plan: Plan,
    *,
    now: int,
    trusted: bool,
) -> None:
    head = view.heads.get(origin)
    head_seq = head[0] if head is not None else 0
    slots = _escrow_slots(origin, view, plan, now)
    for link in sorted(links, key=lambda k: k.seq):
        occupant = slots.get(link.seq)
        if link.seq <= head_seq:
            plan.fork_checks.append((origin, link))
        elif occupant is None:
            slots[link.seq] = link
        else:  # two envelopes for one place: the first keeps it
            _conflict(origin, link, occupant, statuses, plan)
    result = walk(head, slots, trust_claims=trusted)
    for link in result.accepted:
        plan.accepted.append((origin, link))
        if link.escrowed:
            plan.unescrow.append((origin, link.seq))
    if result.head != head:
        plan.heads[origin] = result.head
    taken = {link.seq for link in result.accepted}
    if result.broken is not None and result.broken.prev != NO_PREV:
        at = result.head[0] if result.head else 0
        signed = result.accepted[-1].wire is not None if result.accepted else None
        plan.broken.append((origin, at, result.broken, signed))
        taken.add(result.broken.seq)
    _leftovers(origin, slots, taken, statuses, plan)


def _conflict(origin: bytes, link: Link, occupant: Link, statuses: list[str], plan: Plan) -> None:
    if link.index is not None:
        statuses[link.index] = Status.FORK
    if link.verified and occupant.verified and link.signed is not None:
        plan.evidence.append((origin, link))


def _escrow_slots(origin: bytes, view: View, plan: Plan, now: int) -> dict[int, Link]:
    """Escrowed envelopes as links; the reachable ones are loaded and checked again against
    the key state (a seal learned since may void them, SPEC §6.4), the clock and the
    audience (withheld if no longer for this node, as at arrival). An origin blocked since
    never gets here: each of its items, withheld entries too, is refused first."""
    slots: dict[int, Link] = {}
    state = view.states.get(origin)
    for seq, ref in view.escrow.get(origin, {}).items():
        item = view.escrow_items.get((origin, seq))
        if item is None or item.signed is None:
            slots[seq] = Link(seq, ref.id, NO_PREV, verified=True, wire=None, escrowed=True)
            continue
        signed = item.signed
        envelope = signed.envelope
        try:
            if state is None:
                raise SignatureError(ErrorCode.KEY_POSITION_UNKNOWN, "no key state")
            state.key_for(envelope.kpos, envelope.seq)
        except SignatureError:
            plan.unescrow.append((origin, seq))  # void now: dropped
            continue
        expired = envelope.expires is not None and envelope.expires <= now
        withheld = expired or not _for_us(item, view, ref.via or b"")
        slots[seq] = Link(
            seq, ref.id, envelope.prev, verified=True, wire=None if withheld else item.raw,
            signed=signed, escrowed=True, via=ref.via, type=item.type, audience=item.audience,
            created=envelope.created,
        )  # fmt: skip
    return slots


def _leftovers(
    origin: bytes, slots: dict[int, Link], taken: set[int], statuses: list[str], plan: Plan
) -> None:
    """Links of the batch that did not join the chain: escrowed if they are envelopes for
    this node, else answered with why not."""
    for seq, link in slots.items():
        if seq in taken or link.index is None:
            continue
        if link.verified and link.wire is not None:
            plan.to_escrow.append((origin, link))
        elif link.verified:
            statuses[link.index] = link.status
        else:
            statuses[link.index] = Status.UNLINKED
