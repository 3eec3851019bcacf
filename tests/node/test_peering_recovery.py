"""Seized-server recovery between two peered nodes, on SQLite and PostgreSQL: the officers
delegate a new operational key; the node signs with it; its peer, fed the key event with a
delivery, refuses envelopes and requests signed with the old key past the seal, and still
accepts what the old key signed up to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from peering_support import FedNode, MakeDatabase, envelope, fed_nodes, make_database, peer_up

from node.config import FederationConfig
from node.federation.client import FederationClient
from node.federation.recovery import Recovery, RecoveryError
from node.services.signer import Signer, load_signer
from node.storage import envelopes
from node.web.keys import INBOX, KEY_LOGS
from protocol import KeyState, SignatureError, SignedEnvelope, encode, verify

__all__ = ["make_database"]


async def own_log(node: FedNode) -> tuple[list[bytes], list[SignedEnvelope]]:
    async with node.sessions() as session:
        keys = await envelopes.list_key_events(session, node.node_id)
        rows = await envelopes.list_envelopes(session, node.node_id, limit=1000)
    return keys, [SignedEnvelope.from_bytes(r.wire) for r in rows if r.wire is not None]


async def state_at(node: FedNode, of: FedNode) -> KeyState:
    async with node.sessions() as session:
        state = await node.app[KEY_LOGS].state(session, of.node_id)
    assert state is not None
    return state


async def test_recovery_after_a_seizure(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta", officers=3,
                         threshold=2) as (alpha, beta):  # fmt: skip
        await peer_up(alpha, beta)
        _, signed = await own_log(alpha)
        seal = signed[-1].envelope.seq  # the last envelope the officers vouch for
        officers = alpha.config.data_dir / "officers"
        recovery = Recovery(alpha.sessions, alpha.app[KEY_LOGS], alpha.config)
        with pytest.raises(RecoveryError) as refused:
            await recovery.delegate([officers / "officer-2.key"], None, alpha.clock.now())
        assert refused.value.code == "too_few_officers"

        # The thief, holding the old key, signs on after the seal.
        thief = envelope(alpha, "node.descriptor", {"name": {"und": "not alpha"},
                         "endpoints": ["https://thief.example"]}, seq=seal + 1,
                         prev=signed[-1].id)  # fmt: skip
        state = await recovery.delegate(
            [officers / "officer-2.key", officers / "officer-3.key"], None, alpha.clock.now()
        )
        assert (state.position, state.events[1].seal) == (1, seal)

        # The node (restarted: its signer loaded afresh) signs with the new key.
        new_signer = load_signer(alpha.config.data_dir)
        assert new_signer.key.public == state.op
        keys, signed = await own_log(alpha)
        descriptor = signed[-1]
        assert (descriptor.envelope.kpos, descriptor.envelope.seq) == (1, seal + 1)
        verify(descriptor, state, now=alpha.clock.now())

        # The peer learns the delegation with a delivery (key events ride along).
        inbox = beta.app[INBOX]
        result = await inbox.receive(alpha.node_id, [thief.to_bytes(), descriptor.to_bytes()],
                                     keys, now=beta.clock.now())  # fmt: skip
        assert result.results[0] == "key_revoked", result
        # alpha's own delivery worker may have brought the descriptor first: "duplicate"
        assert result.results[1] in ("ok", "held", "duplicate"), result
        learnt = await state_at(beta, alpha)
        assert learnt.position == 1
        with pytest.raises(SignatureError) as revoked:
            verify(thief, learnt, now=beta.clock.now())
        assert revoked.value.code == "key_revoked"
        verify(signed[0], learnt, now=beta.clock.now())  # old key, within the seal: still valid

        # Requests signed with the old key are refused now; with the new key they pass.
        config = FederationConfig(allow_networks=("127.0.0.0/8",))
        url = beta.url + "/federation/v1/inbox"
        body = encode({"items": [], "keys": []})
        old_signer = Signer(alpha.node_id, alpha.identity.operational)
        async with FederationClient(config, old_signer, alpha.clock) as client:
            answer = await client.post(url, body, destination=beta.node_id)
        assert answer.status == 401
        assert b"httpsig_bad_signature" in answer.body
        async with FederationClient(config, new_signer, alpha.clock) as client:
            answer = await client.post(url, body, destination=beta.node_id)
        assert answer.status != 401, answer.body
