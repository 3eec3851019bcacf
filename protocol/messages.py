"""Node, peering and decision messages (SPEC.md §8.2-§8.4), and their shared parts."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from .fields import (
    LANG_RE,
    MAX_LANGS,
    MAX_TEXT,
    MAX_TITLE,
    TAG_RE,
    check_bytes,
    check_choice,
    check_int,
    check_lang_text,
    check_list,
    check_str,
    check_tags,
    invalid,
)
from .keys import DIGEST_SIZE
from .message import Message, Part

__all__ = [
    "PEERING_DOMAIN",
    "DecisionOutcome",
    "DecisionSummary",
    "NodeDescriptor",
    "PeerAlliance",
    "PeerIntroduce",
    "Ratio",
    "peering_proof",
]

# http(s)://, a host part of printable ASCII other than / ? #, then an optional path (§7.1).
URL_RE: Final = re.compile(r"https?://[!-\x22$-.0->@-~]+(/[!-~]*)?")
MAX_OPTIONS: Final = 64
METHODS: Final = frozenset({"majority", "supermajority", "consent"})
DECIDERS: Final = frozenset({"admins", "organisers", "vote"})
PEERING_DOMAIN: Final = b"TADAMUN-PEERING-V1\x00"  # the proof of a peer.introduce (§8.3)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class NodeDescriptor(Message):
    """``node.descriptor``: the node's mutable, signed public attributes (§8.2)."""

    TYPE: ClassVar[str] = "node.descriptor"
    name: Mapping[str, str]
    endpoints: tuple[str, ...]
    langs: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    about: Mapping[str, str] | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        _set(self, "name", check_lang_text("name", self.name, MAX_TITLE))
        check_list("endpoints", self.endpoints, lambda n, v: check_str(n, v, 512, URL_RE), 8, 1)
        check_list("langs", self.langs, lambda n, v: check_str(n, v, 35, LANG_RE), MAX_LANGS)
        check_tags("caps", self.caps)
        if self.about is not None:
            _set(self, "about", check_lang_text("about", self.about, MAX_TEXT))
        if self.region is not None:
            check_str("region", self.region, 64, TAG_RE)


@dataclass(frozen=True, slots=True)
class PeerIntroduce(Message):
    """``peer.introduce``: a node answering an out-of-band invite (§8.3).

    ``proof`` is HMAC-SHA256(invite secret, PEERING_DOMAIN || inviter id || joiner id).
    """

    TYPE: ClassVar[str] = "peer.introduce"
    inviter: bytes
    invite: bytes
    proof: bytes
    endpoint: str

    def __post_init__(self) -> None:
        check_bytes("inviter", self.inviter, DIGEST_SIZE)
        check_bytes("invite", self.invite, 16)
        check_bytes("proof", self.proof, 32)
        check_str("endpoint", self.endpoint, 512, URL_RE)


def peering_proof(secret: bytes, inviter: bytes, joiner: bytes) -> bytes:
    """The ``proof`` of a ``peer.introduce`` (§8.3): HMAC-SHA256 keyed with the invite's
    32-byte secret over the domain, the inviter's and the joiner's node ids."""
    check_bytes("secret", secret, 32)
    check_bytes("inviter", inviter, DIGEST_SIZE)
    check_bytes("joiner", joiner, DIGEST_SIZE)
    return hmac.new(secret, PEERING_DOMAIN + inviter + joiner, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class PeerAlliance(Message):
    """``peer.alliance``: the origin allies with ``peer``, or ends the alliance (§8.3)."""

    TYPE: ClassVar[str] = "peer.alliance"
    peer: bytes
    state: str

    def __post_init__(self) -> None:
        check_bytes("peer", self.peer, DIGEST_SIZE)
        check_choice("state", self.state, frozenset({"allied", "ended"}))


@dataclass(frozen=True, slots=True)
class Ratio(Part):
    """A fraction ``num/den`` in [0, 1]; the protocol has no floats (§3.1, §8.4)."""

    num: int
    den: int

    def __post_init__(self) -> None:
        check_int("den", self.den, 1, 1_000_000)
        check_int("num", self.num, 0, self.den)


@dataclass(frozen=True, slots=True)
class DecisionOutcome(Message):
    """``decision.outcome``: a closed internal vote, recomputable at its node (§8.4).

    ``counts[i]`` is the number of ballots for ``options[i]``; with ``abstain`` and ``blocks``
    they add up to ``turnout``. No voter is named, ever.
    """

    TYPE: ClassVar[str] = "decision.outcome"
    PARTS: ClassVar[Mapping[str, type[Part]]] = {"quorum": Ratio, "fraction": Ratio}
    proposal: bytes
    title: Mapping[str, str]
    method: str
    quorum: Ratio
    ballot: str
    electorate: int
    turnout: int
    options: tuple[str, ...]
    counts: tuple[int, ...]
    outcome: str
    opened: int
    closed: int
    abstain: int = 0
    blocks: int = 0
    fraction: Ratio | None = None
    winner: int | None = None

    def __post_init__(self) -> None:
        check_bytes("proposal", self.proposal, 16)
        _set(self, "title", check_lang_text("title", self.title, MAX_TITLE))
        check_choice("method", self.method, METHODS)
        if (self.method == "supermajority") != isinstance(self.fraction, Ratio):
            raise invalid("fraction", "present exactly for a supermajority")
        if not isinstance(self.quorum, Ratio):
            raise invalid("quorum", "must be a ratio")
        check_choice("ballot", self.ballot, frozenset({"open", "secret"}))
        check_choice("outcome", self.outcome, frozenset({"adopted", "rejected", "no_quorum"}))
        check_list("options", self.options, lambda n, v: check_str(n, v, MAX_TITLE), MAX_OPTIONS, 1)
        if not isinstance(self.counts, tuple) or len(self.counts) != len(self.options):
            raise invalid("counts", "one count per option")
        electorate = check_int("electorate", self.electorate)
        _check_turnout(self.turnout, electorate, (*self.counts, self.abstain, self.blocks))
        check_int("closed", self.closed, check_int("opened", self.opened))
        if self.winner is not None:
            check_int("winner", self.winner, 0, len(self.options) - 1)


def _check_turnout(turnout: object, electorate: int, counts: tuple[object, ...]) -> None:
    total = sum(check_int("count", c) for c in counts)
    if check_int("turnout", turnout, 0, electorate) != total:
        raise invalid("turnout", f"must equal the sum of the counts ({total})")


@dataclass(frozen=True, slots=True)
class DecisionSummary(Part):
    """How an organisation decided on a call: who decided, and the counts (§8.5)."""

    by: str
    electorate: int
    turnout: int
    yes: int
    no: int
    abstain: int = 0
    blocks: int = 0
    method: str | None = None
    decision: bytes | None = None

    def __post_init__(self) -> None:
        check_choice("by", self.by, DECIDERS)
        if (self.by == "vote") != (self.method is not None):
            raise invalid("method", "present exactly when members voted")
        if self.method is not None:
            check_choice("method", self.method, METHODS)
        electorate = check_int("electorate", self.electorate)
        _check_turnout(self.turnout, electorate, (self.yes, self.no, self.abstain, self.blocks))
        if self.decision is not None:
            check_bytes("decision", self.decision, DIGEST_SIZE)
