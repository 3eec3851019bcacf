"""Names shown for the values the services use as identifiers (roles, statuses, methods,
audit actions ...): ``label(kind, value)`` in templates. A value without a name here (an
audit action added later, say) is shown as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from node.web.pages.i18n import N_

__all__ = ["LABELS"]

LABELS: Final[Mapping[str, Mapping[str, str]]] = {
    "role": {"member": N_("member"), "organiser": N_("organiser"), "admin": N_("admin")},
    "status": {
        "pending": N_("waiting for approval"),
        "active": N_("active"),
        "suspended": N_("suspended"),
        "left": N_("left"),
        "deleted": N_("deleted"),
    },
    "method": {
        "majority": N_("majority"),
        "supermajority": N_("supermajority"),
        "consent": N_("consent (any block stops it)"),
    },
    "ballot": {"open": N_("open ballot"), "secret": N_("secret ballot")},
    "decider": {
        "admins": N_("admins"),
        "organisers": N_("organisers and admins"),
        "vote": N_("a vote of the members"),
    },
    "invite": {"usable": N_("usable"), "expired": N_("expired"), "used_up": N_("used up")},
    "proposal": {
        "scheduled": N_("opens later"),
        "open": N_("open for voting"),
        "closed": N_("closed"),
        "cancelled": N_("cancelled"),
    },
    "outcome": {
        "adopted": N_("adopted"),
        "rejected": N_("rejected"),
        "no_quorum": N_("no quorum"),
    },
    "call_kind": {
        "strike": N_("strike"),
        "demonstration": N_("demonstration"),
        "boycott": N_("boycott"),
        "petition": N_("petition"),
        "solidarity": N_("solidarity"),
        "meeting": N_("meeting"),
    },
    "call_state": {
        "open": N_("open for pledges"),
        "activated": N_("activated: the threshold is reached"),
        "cancelled": N_("cancelled"),
        "concluded": N_("concluded"),
        "void": N_("void: the threshold was not reached in time"),
    },
    "pledge": {"firm": N_("firm"), "conditional": N_("conditional")},
    "verdict": {"endorse": N_("joined"), "decline": N_("declined")},
    "peer_state": {
        "introduced": N_("introduced, not allied yet"),
        "allied": N_("allied"),
        "blocked": N_("blocked"),
        "removed": N_("removed"),
    },
    "peer_invite": {"usable": N_("usable"), "used": N_("used"), "expired": N_("expired")},
    "coalition_state": {"member": N_("member"), "invited": N_("invited"), "left": N_("left")},
    "coalition_standing": {
        "member": N_("a member"),
        "invited": N_("invited, not joined yet"),
        "left": N_("left it"),
        "none": N_("not in it"),
    },
    "action": {
        "node.init": N_("node set up"),
        "member.register": N_("member joined"),
        "member.approve": N_("member approved"),
        "member.suspend": N_("member suspended"),
        "member.reinstate": N_("member reinstated"),
        "member.role": N_("role changed"),
        "member.leave": N_("member left"),
        "member.delete": N_("account deleted"),
        "member.password_change": N_("password changed"),
        "invite.create": N_("invite made"),
        "invite.delete": N_("invite withdrawn"),
        "policy.update": N_("governance policy changed"),
        "call.issue": N_("call to action issued"),
        "call.amend": N_("call to action amended"),
        "call.cancel": N_("call to action cancelled"),
        "call.update": N_("update posted to a call"),
        "call.conclude": N_("call to action concluded"),
        "call.endorsed": N_("decided to join a call"),
        "call.declined": N_("decided not to join a call"),
        "peer.invite.create": N_("peering invite made"),
        "peer.invite.revoke": N_("peering invite revoked"),
        "peer.join": N_("joined another node's invite"),
        "peer.accept": N_("another node joined our invite"),
        "peer.block": N_("peer blocked"),
        "peer.unblock": N_("peer unblocked"),
        "peer.remove": N_("peer removed"),
        "coalition.found": N_("coalition founded"),
        "coalition.invite": N_("node invited to a coalition"),
        "coalition.join": N_("joined a coalition"),
        "coalition.leave": N_("left a coalition or declined its invite"),
    },
}
