"""Typed keys for what the application owns (STYLE.md §8)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.clock import Clock
from node.config import Config
from node.federation.catchup import Catchup
from node.federation.client import FederationClient
from node.federation.delivery import Delivery
from node.federation.inbox import Inbox
from node.federation.keylogs import KeyLogs
from node.federation.peer_admin import PeerAdmin
from node.federation.peering import Peering
from node.federation.transport import TransportVerifier
from node.services.accounts import Accounts
from node.services.admin import Administration
from node.services.coalitions import Coalitions
from node.services.decisions import BallotKeys
from node.services.invites import Invites
from node.services.passwords import PasswordHasher
from node.services.policy import PolicyService
from node.services.profiles import Profiles
from node.services.secrets import NodeSecrets
from node.services.signer import Signer
from node.services.tallies import CallScheduler, TallyRules

__all__ = [
    "ACCOUNTS",
    "ADMINISTRATION",
    "BALLOT_KEYS",
    "CALL_SCHEDULER",
    "CATCHUP",
    "CLOCK",
    "COALITIONS",
    "CONFIG",
    "DELIVERY",
    "ENGINE",
    "FEDERATION_CLIENT",
    "HASHER",
    "INBOX",
    "INVITES",
    "KEY_LOGS",
    "OPENAPI",
    "PEERING",
    "PEER_ADMIN",
    "POLICY",
    "PROFILES",
    "SECRETS",
    "SESSIONS",
    "SIGNER",
    "TALLY_RULES",
    "TRANSPORT",
]

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[Any])
SECRETS = web.AppKey("secrets", NodeSecrets)
HASHER = web.AppKey("hasher", PasswordHasher)
OPENAPI = web.AppKey("openapi", dict[str, Any])
# Services, built once the database is open.
ACCOUNTS = web.AppKey("accounts", Accounts)
PROFILES = web.AppKey("profiles", Profiles)
ADMINISTRATION = web.AppKey("administration", Administration)
INVITES = web.AppKey("invites", Invites)
POLICY = web.AppKey("policy", PolicyService)
SIGNER = web.AppKey("signer", Signer)
BALLOT_KEYS = web.AppKey("ballot_keys", BallotKeys)
PEERING = web.AppKey("peering", Peering)  # invites, joining, the well-known document
PEER_ADMIN = web.AppKey("peer_admin", PeerAdmin)
COALITIONS = web.AppKey("coalitions", Coalitions)  # found, invite, join, leave (SPEC §15)
KEY_LOGS = web.AppKey("key_logs", KeyLogs)  # verified key states of every node, one cache
TRANSPORT = web.AppKey("transport", TransportVerifier)  # transport signatures of requests
INBOX = web.AppKey("inbox", Inbox)  # envelopes and key events from peers; log pages
FEDERATION_CLIENT = web.AppKey("federation_client", FederationClient)  # outbound, signed
DELIVERY = web.AppKey("delivery", Delivery)  # the outbox's per-peer workers
CATCHUP = web.AppKey("catchup", Catchup)  # pulls allies' logs after downtime and gaps
TALLY_RULES = web.AppKey("tally_rules", TallyRules)  # this node's tallies of calls (config)
CALL_SCHEDULER = web.AppKey("call_scheduler", CallScheduler)  # tallies, activation, void
