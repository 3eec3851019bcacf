"""Whether a ``coalition:<id>`` envelope is for this node (SPEC §15.4): the receiving end of
the coalition audience, pure, from the coalition states the inbox read for the batch and the
peers' states.

- A ``coalition.invite`` naming this node is for it only from an *allied* peer (coalitions
  are among allies): that is how a node learns a coalition. If it also passes the checks of
  §15.2, later items of the batch see this node invited, and the invite's snapshot names
  its members and invitees for them.
- Other ``coalition.*`` envelopes are for a member or an invitee, and only from an origin
  the coalition names here (member, invited or left), or a ``coalition.found`` of its
  founder, or a ``coalition.join`` citing an invite held here that names its origin, or
  relayed by a member (an invite or join may travel ahead of what places its origin here).
  So nodes the coalition never named cannot make this node store and compute with their
  envelopes; the membership computation still decides what the admitted ones change.
- Anything else (calls and their verdicts, tallies, activations) only for a member, from an
  origin that is a member (or invited: its join may be in the same batch), sent by the
  origin or through a node that is a member or invited here.

Everything else is ``not_for_us``: the envelope's place in its origin's chain is kept,
withheld, as for any audience that excludes this node.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Final

from node.storage.coalitions import CoalitionStates
from node.storage.peers import ALLIED
from protocol import (
    CoalitionFound,
    CoalitionInvite,
    CoalitionJoin,
    CoalitionMessage,
    Envelope,
    ProtocolError,
    check_coalition_envelope,
    coalition_of,
)
from protocol.membership import INVITED, LEFT, MEMBER

__all__ = ["MANAGEMENT", "admits"]

MANAGEMENT: Final = "coalition."  # the prefix of the types that manage membership
_IN: Final = (MEMBER, INVITED)
_NAMED: Final = (MEMBER, INVITED, LEFT)


def admits(
    envelope: Envelope,
    *,
    sender: bytes,
    self_id: bytes,
    states: MutableMapping[bytes, dict[bytes, str]],
    peers: Mapping[bytes, str],
) -> bool:
    """Whether the envelope is for this node. ``states``: coalition -> node -> state as held
    (a :class:`CoalitionStates` for a coalition known here), updated for the rest of the
    batch by what it admits; ``peers``: node -> its state as a peer here."""
    coalition = coalition_of(envelope.audience)
    if coalition is None:
        return False
    known = states.get(coalition)
    if not isinstance(known, CoalitionStates):
        known = states[coalition] = _upgrade(known)
    origin = envelope.origin
    if envelope.type.startswith(MANAGEMENT):
        return _managing(envelope, known, self_id, sender, peers)
    if known.get(self_id) != MEMBER or known.get(origin) not in _IN:
        return False
    return sender in (b"", origin) or known.get(sender) in _IN


def _managing(
    envelope: Envelope,
    known: CoalitionStates,
    self_id: bytes,
    sender: bytes,
    peers: Mapping[bytes, str],
) -> bool:
    to_us = envelope.type == CoalitionInvite.TYPE and envelope.body.get("invitee") == self_id
    if to_us:
        admitted = peers.get(envelope.origin) == ALLIED
    else:
        admitted = known.get(self_id) in _IN and _placed(envelope, known, sender)
    if admitted and envelope.type == CoalitionInvite.TYPE:
        _learn(known, envelope, snapshot=to_us)
    return admitted


def _upgrade(held: Mapping[bytes, str] | None) -> CoalitionStates:
    known = CoalitionStates()
    known.update(held or {})
    return known


def _placed(envelope: Envelope, known: CoalitionStates, sender: bytes) -> bool:
    """Whether the coalition names the origin here, or a member relayed the envelope, or the
    envelope places its origin: a found of the founder, a join citing a held invite that
    names its origin."""
    origin, body = envelope.origin, envelope.body
    if known.get(origin) in _NAMED or (sender not in (b"", origin) and known.get(sender) == MEMBER):
        return True
    if envelope.type == CoalitionFound.TYPE:
        return origin == known.founder or isinstance(_checked(envelope), CoalitionFound)
    if envelope.type == CoalitionJoin.TYPE:
        invite = body.get("invite")
        return isinstance(invite, bytes) and known.invites.get(invite) == origin
    return False


def _checked(envelope: Envelope) -> CoalitionMessage | None:
    """The body, if the envelope passes SPEC §15.2 (one that does not is still admitted
    when its origin is: it is stored and answered ``invalid_field``, and marks nothing)."""
    try:
        return check_coalition_envelope(envelope)
    except ProtocolError:
        return None


def _learn(known: CoalitionStates, envelope: Envelope, *, snapshot: bool) -> None:
    """What an admitted invite that passes SPEC §15.2 tells the rest of the batch: it is held
    (a join may cite it), its invitee is invited unless a member; and for an invite naming
    this node (``snapshot``), the members and invitees of its snapshot are named."""
    message = _checked(envelope)
    if not isinstance(message, CoalitionInvite):
        return
    known.invites[envelope.id] = message.invitee
    if known.get(message.invitee) != MEMBER:
        known[message.invitee] = INVITED
    if not snapshot:
        return
    if known.founder == b"":
        known.founder = message.founder
    for member in message.members:
        known.setdefault(member.node, MEMBER)
    for open_ in message.invites:
        known.invites.setdefault(open_.invite, open_.invitee)
        known.setdefault(open_.invitee, INVITED)
