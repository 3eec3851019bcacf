"""Whether a ``coalition:<id>`` envelope is for this node (SPEC §15.4): the receiving end of
the coalition audience, pure, from the coalition states the inbox read for the batch.

- A ``coalition.invite`` naming this node is for it, whatever it knew: that is how a node
  learns a coalition. Later items of the batch then see it invited.
- Other ``coalition.*`` envelopes are for a member or an invitee: whoever sent them, the
  membership computation decides what they change (a join of a node this one cannot place
  yet waits for its invite), so none is refused on a view that may be behind.
- Anything else (calls and their verdicts, tallies, activations) only for a member, from an
  origin that is a member (or invited: its join may be in the same batch), sent by the
  origin or through a node that is a member or invited here.

Everything else is ``not_for_us``: the envelope's place in its origin's chain is kept,
withheld, as for any audience that excludes this node.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from protocol import CoalitionInvite, coalition_of
from protocol.membership import INVITED, MEMBER

__all__ = ["MANAGEMENT", "admits"]

MANAGEMENT: Final = "coalition."  # the prefix of the types that manage membership
_IN: Final = (MEMBER, INVITED)


def admits(
    *,
    audience: str,
    type: str,
    body: Mapping[str, Any],
    origin: bytes,
    sender: bytes,
    self_id: bytes,
    states: MutableMapping[bytes, dict[bytes, str]],
) -> bool:
    """Whether the envelope is for this node. ``states``: coalition -> node -> state as held;
    an invite naming this node marks it invited there, for the rest of the batch."""
    coalition = coalition_of(audience)
    if coalition is None:
        return False
    known = states.setdefault(coalition, {})
    if type == CoalitionInvite.TYPE and body.get("invitee") == self_id:
        if known.get(self_id) != MEMBER:
            known[self_id] = INVITED
        return True
    if type.startswith(MANAGEMENT):
        return known.get(self_id) in _IN
    if known.get(self_id) != MEMBER or known.get(origin) not in _IN:
        return False
    return sender in (b"", origin) or known.get(sender) in _IN
