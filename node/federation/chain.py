"""One origin's log as this node holds it: a chain of envelopes by ``seq``, each naming the
id of the one before in ``prev`` (SPEC §5.2). Pure: no database, no clock.

The inbox puts every candidate for a place in the chain into one map by ``seq`` (envelopes
just received, envelopes waiting in escrow, withheld entries of a catch-up page) and
:func:`walk` takes them in order from the held head:

* a *verified* link (its id proven by the origin's signature) follows the head when its
  ``prev`` is the head's id; a different ``prev`` breaks the chain there: the origin signed
  two histories (a fork), and nothing after it is taken;
* a *claimed* link (a withheld entry: an id a peer says holds that place, SPEC §14.3) is
  taken only as part of a run of claims that the next verified link confirms, its ``prev``
  being the run's last id; or when the claims come from the origin itself (``trust_claims``),
  since a node is the authority on its own log and cannot be shown what it withholds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol import SignedEnvelope

__all__ = ["Link", "Walk", "walk"]


@dataclass(slots=True)
class Link:
    """A candidate for place ``seq`` of one origin's chain."""

    seq: int
    id: bytes
    prev: bytes | None  # the id it names before it; None for seq 1 and for claims
    verified: bool  # the origin's signature proves the id (else a withheld claim)
    wire: bytes | None  # what to store: the signed bytes, or None for a withheld row
    signed: SignedEnvelope | None = field(default=None, repr=False)
    index: int | None = None  # its place in the batch being answered, if it came in it
    status: str = "ok"  # the answer for that place once the link is taken
    escrowed: bool = False  # it waits in escrow already
    via: bytes | None = None  # the peer it came from
    type: str = ""  # the envelope's, if it is known
    audience: str = ""
    created: int = 0


@dataclass(slots=True)
class Walk:
    accepted: list[Link]  # the links taken, in order
    head: tuple[int, bytes] | None  # the new head (seq, id)
    broken: Link | None  # a verified link whose prev is not the head's id: a fork


def walk(
    head: tuple[int, bytes] | None, slots: Mapping[int, Link], *, trust_claims: bool = False
) -> Walk:
    """Take links from ``slots`` after ``head`` for as long as the chain holds."""
    seq, head_id = head if head is not None else (0, None)
    accepted: list[Link] = []
    while (link := slots.get(seq + 1)) is not None:
        if link.verified:
            if link.prev != head_id:
                return Walk(accepted, _head(seq, head_id), link)
            accepted.append(link)
            seq, head_id = link.seq, link.id
            continue
        run = _claims_from(slots, seq + 1)
        after = slots.get(run[-1].seq + 1)
        confirmed = after is not None and after.verified and after.prev == run[-1].id
        if not (confirmed or trust_claims):
            break
        accepted.extend(run)
        seq, head_id = run[-1].seq, run[-1].id
    return Walk(accepted, _head(seq, head_id), None)


def _claims_from(slots: Mapping[int, Link], seq: int) -> list[Link]:
    run = []
    while (link := slots.get(seq)) is not None and not link.verified:
        run.append(link)
        seq += 1
    return run


def _head(seq: int, head_id: bytes | None) -> tuple[int, bytes] | None:
    return None if head_id is None else (seq, head_id)
