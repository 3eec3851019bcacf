"""The admin API of federation peers: list (with delivery health), join an invite, block,
unblock, remove; peering invites: make, list, revoke. Thin: parse (done by the route
table), call one service, serialise."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.federation.peering import DEFAULT_INVITE_HOURS, MAX_INVITE_HOURS
from node.storage.peers import STATES
from node.web.api import Call, Route, json_response, no_content
from node.web.auth import Auth
from node.web.keys import PEER_ADMIN, PEERING
from node.web.schema import Schema, array, boolean, extend, integer, obj, string
from protocol import ErrorCode

__all__ = ["PEER_ROUTES"]

TIME = "unix time, seconds"
NODE_HEX = r"[0-9a-f]{64}"

DELIVERY: Final = Schema(
    "PeerDelivery",
    {
        "pending": integer("envelopes queued for it", minimum=0),
        "failures": integer("failed attempts in a row", minimum=0),
        "next_attempt_at": integer(f"{TIME}; 0 when not backing off", minimum=0),
        "last_delivery_at": integer(TIME, nullable=True),
        "last_error": string("why the last attempt failed", nullable=True),
    },
    "How delivery to the peer is going.",
)
PEER: Final = Schema(
    "Peer",
    {
        "node": string("node id, hex", pattern=NODE_HEX),
        "fingerprint": string("compare it out of band", pattern=r"[0-9]{5}( [0-9]{5}){5}"),
        "name": string("from its descriptor"),
        "endpoint": string("its base URL"),
        "state": string(choices=STATES),
        "they_allied": boolean("it declared the alliance too"),
        "created_at": integer(TIME),
        "updated_at": integer(TIME),
        "last_contact_at": integer(f"{TIME}: its last authenticated request", nullable=True),
        "delivery": obj(DELIVERY),
    },
    "A node this one peered with.",
)
PEER_LIST: Final = Schema("PeerList", {"items": array(obj(PEER))}, "Every peer, by node id.")
JOIN: Final = Schema(
    "PeerJoin",
    {"invite": string("the tadamun-peer: string another node's admin gave", min_length=1,
                      max_length=2048)},
)  # fmt: skip
PEER_NAME: Final = Schema(
    "PeerName",
    {"node": string("node id in hex, a unique prefix of it, or the fingerprint", min_length=1,
                    max_length=64)},
)  # fmt: skip
PEER_INVITE: Final = Schema(
    "PeerInvite",
    {
        "id": string("invite id, hex", pattern=r"[0-9a-f]{32}"),
        "created_at": integer(TIME),
        "expires_at": integer(TIME),
        "used_at": integer(TIME, nullable=True),
        "used_by": string("the node that used it, hex", nullable=True, pattern=NODE_HEX),
        "state": string(choices=("usable", "used", "expired")),
    },
    "A peering invite this node made (its secret is never shown again).",
)
CREATED_PEER_INVITE: Final = extend(
    PEER_INVITE, "CreatedPeerInvite", "A new peering invite, with its string (shown once).",
    invite=string("give this to the other node's admin, out of band"),
    fingerprint=string("this node's fingerprint, to compare", pattern=r"[0-9]{5}( [0-9]{5}){5}"),
)  # fmt: skip
PEER_INVITE_LIST: Final = Schema("PeerInviteList", {"items": array(obj(PEER_INVITE))})
PEER_INVITE_REQUEST: Final = Schema(
    "PeerInviteRequest",
    {"expires_hours": integer(f"default {DEFAULT_INVITE_HOURS}", required=False, minimum=1,
                              maximum=MAX_INVITE_HOURS)},
)  # fmt: skip


async def list_peers(call: Call) -> web.Response:
    return json_response({"items": await call.app[PEER_ADMIN].list()})


async def join_peer(call: Call) -> web.Response:
    peer = await call.app[PEERING].join(call.member.actor, call.body["invite"])
    return json_response(peer, status=201)


async def _change(call: Call, action: str) -> web.Response:
    peer = await call.app[PEER_ADMIN].change(call.member.actor, call.body["node"], action)
    return json_response(peer)


async def block_peer(call: Call) -> web.Response:
    return await _change(call, "block")


async def unblock_peer(call: Call) -> web.Response:
    return await _change(call, "unblock")


async def remove_peer(call: Call) -> web.Response:
    return await _change(call, "remove")


async def list_peer_invites(call: Call) -> web.Response:
    return json_response({"items": await call.app[PEERING].invites()})


async def create_peer_invite(call: Call) -> web.Response:
    hours = call.body.get("expires_hours", DEFAULT_INVITE_HOURS)
    return json_response(await call.app[PEERING].create_invite(call.member.actor, hours), 201)


async def revoke_peer_invite(call: Call) -> web.Response:
    await call.app[PEERING].revoke_invite(call.member.actor, call.public_ids["invite_id"])
    return no_content()


KEYLOG_CODES: Final = tuple(code.value for code in ErrorCode if code.startswith("keylog_"))
JOIN_ERRORS: Final = {
    400: ["invalid_invite", "url_refused", "address_refused"],
    502: ["peer_unreachable", "peer_bad_response", "peer_wrong_node", "peering_refused",
          "redirect_refused", "response_too_large", *KEYLOG_CODES],
    504: ["peer_timeout"],
}  # fmt: skip
CHANGE_ERRORS: Final = {400: ["ambiguous_peer"], 404: ["not_found"], 409: ["invalid_transition"]}
PEER_ROUTES: Final = (
    Route("GET", "/peers", list_peers, "List peers and their delivery health", Auth.ADMIN,
          returns=PEER_LIST, tag="federation"),
    Route("POST", "/peers/join", join_peer, "Answer another node's peering invite", Auth.ADMIN,
          201, PEER, body=JOIN, errors=JOIN_ERRORS, tag="federation",
          description="Fetches the inviter's key log and descriptor, introduces this node, "
          "and allies the two. Compare the answer's fingerprint with the inviter's admin."),
    Route("POST", "/peers/block", block_peer, "Block a peer: nothing is accepted from it or "
          "sent to it", Auth.ADMIN, returns=PEER, body=PEER_NAME, errors=CHANGE_ERRORS,
          tag="federation"),
    Route("POST", "/peers/unblock", unblock_peer, "Unblock a peer (allied again)", Auth.ADMIN,
          returns=PEER, body=PEER_NAME, errors=CHANGE_ERRORS, tag="federation"),
    Route("POST", "/peers/remove", remove_peer, "Remove a peer; only a new invite brings it "
          "back", Auth.ADMIN, returns=PEER, body=PEER_NAME, errors=CHANGE_ERRORS,
          tag="federation"),
    Route("GET", "/peer-invites", list_peer_invites, "List peering invites, newest first",
          Auth.ADMIN, returns=PEER_INVITE_LIST, tag="federation"),
    Route("POST", "/peer-invites", create_peer_invite, "Make a peering invite (shown once)",
          Auth.ADMIN, 201, CREATED_PEER_INVITE, body=PEER_INVITE_REQUEST, tag="federation"),
    Route("DELETE", "/peer-invites/{invite_id}", revoke_peer_invite, "Revoke a peering invite",
          Auth.ADMIN, 204, public_ids=("invite_id",), tag="federation"),
)  # fmt: skip
