"""The admin API of coalitions (SPEC §15): list, found, show, invite a node, join, leave.
Thin: parse (done by the route table), call one service (node.services.coalitions),
serialise. ``{coalition_id}`` is this node's number for a coalition; ``coalition`` in the
answers is its protocol id in hex, and ``audience`` what calls to it are addressed to."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.services.coalitions import STATES
from node.web.api import Call, Route, json_response
from node.web.auth import Auth
from node.web.keys import COALITIONS
from node.web.schema import Schema, array, boolean, integer, obj, string

__all__ = ["COALITION_ROUTES"]

TIME = "unix time, seconds"
NODE_HEX = r"[0-9a-f]{64}"
LANGS: Final = ("ar", "ckb", "en", "kmr", "fa", "tr")


def _texts(name: str, max_length: int, doc: str, *, multiline: bool = False) -> Schema:
    return Schema(
        name,
        {lang: string(required=False, min_length=1, max_length=max_length, multiline=multiline)
         for lang in LANGS},
        doc,
    )  # fmt: skip


NAME: Final = _texts("CoalitionName", 512, "A name per language: at least one.")
PURPOSE: Final = _texts("CoalitionPurpose", 16_384, "What it is for, per language.", multiline=True)
MEMBER: Final = Schema(
    "CoalitionMember",
    {
        "node": string("node id, hex", pattern=NODE_HEX),
        "fingerprint": string("compare it out of band", pattern=r"[0-9]{5}( [0-9]{5}){5}"),
        "name": string("its name, if it is a peer of this node"),
        "self": boolean("this node"),
        "state": string(choices=STATES),
        "since": integer("the seq of its found or join in its own log", nullable=True),
        "invited_at": integer(f"{TIME}: when its open invite was made", nullable=True),
    },
    "A node the coalition names, as this node computes membership.",
)
INVITATION: Final = Schema(
    "CoalitionInvitation",
    {
        "invite": string("the invite's envelope id, hex", pattern=NODE_HEX),
        "created": integer(f"{TIME}: when it was made"),
        "inviter": string("node id, hex; null if only listed in another invite",
                          pattern=NODE_HEX, nullable=True),
        "inviter_fingerprint": string("compare it out of band", nullable=True),
        "inviter_name": string("its name, if it is a peer of this node"),
    },
    "An open invite naming this node.",
)  # fmt: skip
COALITION: Final = Schema(
    "Coalition",
    {
        "id": integer("this node's number for it", minimum=1),
        "coalition": string("its protocol id, hex", pattern=NODE_HEX),
        "audience": string("address calls to it with this audience"),
        "name": obj(None, "a name per language"),
        "purpose": obj(None, "per language", nullable=True),
        "founder": string("node id, hex", pattern=NODE_HEX),
        "founder_verified": boolean(
            "the founder's coalition.found is held here; until then founder, name and purpose "
            "are the inviter's word"
        ),
        "standing": string("this node's own state", choices=(*STATES, "none")),
        "members": array(obj(MEMBER)),
        "invitations": array(obj(INVITATION)),
        "created_at": integer(TIME),
        "updated_at": integer(TIME),
    },
    "A coalition this node founded or was invited to.",
)
COALITION_LIST: Final = Schema("CoalitionList", {"items": array(obj(COALITION))})
FOUNDING: Final = Schema(
    "CoalitionFounding",
    {"name": obj(NAME), "purpose": obj(PURPOSE, required=False, nullable=True)},
    "A new coalition.",
)
INVITEE: Final = Schema(
    "CoalitionInvitee",
    {"node": string("node id in hex; a peer also by a unique prefix or its fingerprint",
                    min_length=1, max_length=64)},
)  # fmt: skip


async def list_coalitions(call: Call) -> web.Response:
    return json_response({"items": await call.app[COALITIONS].list()})


async def found_coalition(call: Call) -> web.Response:
    body = call.body
    made = await call.app[COALITIONS].found(call.member.actor, body["name"], body.get("purpose"))
    return json_response(made, status=201)


async def show_coalition(call: Call) -> web.Response:
    return json_response(await call.app[COALITIONS].get(call.ids["coalition_id"]))


async def invite_node(call: Call) -> web.Response:
    service, number = call.app[COALITIONS], call.ids["coalition_id"]
    return json_response(await service.invite(call.member.actor, number, call.body["node"]))


async def join_coalition(call: Call) -> web.Response:
    service, number = call.app[COALITIONS], call.ids["coalition_id"]
    return json_response(await service.join(call.member.actor, number, call.query.get("invite")))


async def leave_coalition(call: Call) -> web.Response:
    return json_response(
        await call.app[COALITIONS].leave(call.member.actor, call.ids["coalition_id"])
    )


CHOSEN_INVITE: Final = Schema(
    "CoalitionJoinQuery",
    {"invite": string("an open invite's id in hex, or a unique prefix (default: the oldest)",
                      required=False, min_length=1, max_length=64)},
)  # fmt: skip
INVITE_ERRORS: Final = {
    400: ["ambiguous_node", "own_node"],
    404: ["unknown_node"],
    409: ["not_a_member", "already_member", "already_invited", "blocked_node", "coalition_full"],
}
COALITION_ROUTES: Final = (
    Route("GET", "/coalitions", list_coalitions, "List the coalitions this node knows",
          Auth.ADMIN, returns=COALITION_LIST, tag="coalitions"),
    Route("POST", "/coalitions", found_coalition, "Found a coalition, this node its first "
          "member", Auth.ADMIN, 201, COALITION, body=FOUNDING, tag="coalitions",
          description="Signs a coalition.found addressed to the new coalition. Invite other "
          "nodes next; calls to the coalition use its `audience`."),
    Route("GET", "/coalitions/{coalition_id}", show_coalition, "A coalition and who is in it",
          Auth.ADMIN, returns=COALITION, tag="coalitions"),
    Route("POST", "/coalitions/{coalition_id}/invite", invite_node, "Invite a node", Auth.ADMIN,
          returns=COALITION, body=INVITEE, errors=INVITE_ERRORS, tag="coalitions",
          description="Only a member invites. The invite carries this node's view of the "
          "coalition (members, open invites) and goes to the members, the invitees and the "
          "invited node, relayed by members allied with it."),
    Route("POST", "/coalitions/{coalition_id}/join", join_coalition, "Join by an open invite "
          "naming this node", Auth.ADMIN, returns=COALITION, query=CHOSEN_INVITE,
          errors={400: ["ambiguous_node"], 409: ["not_invited", "already_member"]},
          tag="coalitions", description="By the invite `invite` names, else the oldest open "
          "one (the coalition's `invitations`, with who sent each)."),
    Route("POST", "/coalitions/{coalition_id}/leave", leave_coalition, "Leave, or decline the "
          "open invite", Auth.ADMIN, returns=COALITION, errors={409: ["not_in_coalition"]},
          tag="coalitions"),
)  # fmt: skip
