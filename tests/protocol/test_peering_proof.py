"""The proof of a ``peer.introduce`` (SPEC §8.3): HMAC-SHA256 under the invite secret over the
domain and both node ids, computed here independently; wrong sizes are refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from protocol import PeerIntroduce, ValidationError, peering_proof

SECRET = bytes(range(32))
INVITER = bytes([1]) * 32
JOINER = bytes([2]) * 32


def test_the_proof_is_the_hmac_of_the_spec() -> None:
    message = b"TADAMUN-PEERING-V1\x00" + INVITER + JOINER
    expected = hmac.new(SECRET, message, hashlib.sha256).digest()
    assert peering_proof(SECRET, INVITER, JOINER) == expected
    assert peering_proof(SECRET, JOINER, INVITER) != expected  # the order of the ids matters
    PeerIntroduce(INVITER, bytes(16), expected, "https://union.example")


@pytest.mark.parametrize(
    ("secret", "inviter", "joiner"),
    [(SECRET[:31], INVITER, JOINER), (SECRET, INVITER[:31], JOINER), (SECRET, INVITER, b"")],
)
def test_wrong_sizes_are_refused(secret: bytes, inviter: bytes, joiner: bytes) -> None:
    with pytest.raises(ValidationError):
        peering_proof(secret, inviter, joiner)
