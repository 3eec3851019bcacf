"""The composition root: ``create_app`` builds the aiohttp application and owns every
resource, opened and closed in ``cleanup_ctx`` (STYLE.md §8)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from node.clock import Clock, SystemClock
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
from node.services.closing import run_scheduler
from node.services.coalitions import Coalitions
from node.services.decisions import BallotKeys
from node.services.invites import Invites
from node.services.passwords import PasswordHasher
from node.services.policy import PolicyService
from node.services.profiles import Profiles
from node.services.secrets import NodeSecrets, load_secrets
from node.services.signer import SignerError, load_signer
from node.services.tallies import CallScheduler, TallyRules
from node.storage.db import create_engine, require_migrated, session_factory
from node.web.admin import ADMIN_ROUTES
from node.web.api import Route, install
from node.web.calls import CALL_ROUTES
from node.web.coalitions import COALITION_ROUTES
from node.web.decisions import DECISION_ROUTES
from node.web.errors import error_middleware
from node.web.federation import install_inbox
from node.web.federation_peering import install_peering
from node.web.health import healthz
from node.web.keys import (
    ACCOUNTS,
    ADMINISTRATION,
    BALLOT_KEYS,
    CALL_SCHEDULER,
    CATCHUP,
    CLOCK,
    COALITIONS,
    CONFIG,
    DELIVERY,
    ENGINE,
    FEDERATION_CLIENT,
    HASHER,
    INBOX,
    INVITES,
    KEY_LOGS,
    OPENAPI,
    PEER_ADMIN,
    PEERING,
    POLICY,
    PROFILES,
    SECRETS,
    SESSIONS,
    SIGNER,
    TALLY_RULES,
    TRANSPORT,
)
from node.web.members import MEMBER_ROUTES
from node.web.openapi import OPENAPI_ROUTE, build_document
from node.web.pages import setup_pages
from node.web.peers import PEER_ROUTES

__all__ = ["api_routes", "create_app", "settle_heap"]

log = logging.getLogger(__name__)


def api_routes() -> tuple[Route, ...]:
    """Every route of the JSON API, in the order the OpenAPI document lists them."""
    return (
        OPENAPI_ROUTE,
        *MEMBER_ROUTES,
        *ADMIN_ROUTES,
        *DECISION_ROUTES,
        *PEER_ROUTES,
        *COALITION_ROUTES,
        *CALL_ROUTES,
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[CONFIG].database.url)
    try:
        await require_migrated(engine)  # refuse to serve an unmigrated schema
        app[ENGINE] = engine
        app[SESSIONS] = session_factory(engine)
        yield
    finally:
        await engine.dispose()


async def _services(app: web.Application) -> AsyncIterator[None]:
    sessions, clock, secrets = app[SESSIONS], app[CLOCK], app[SECRETS]
    accounts = Accounts(sessions, clock, secrets, app[HASHER])
    app[ACCOUNTS] = accounts
    app[PROFILES] = Profiles(sessions, clock, secrets, accounts)
    app[ADMINISTRATION] = Administration(sessions, clock)
    app[INVITES] = Invites(sessions, clock, app[CONFIG].server.base_url)
    app[POLICY] = PolicyService(sessions, clock)
    yield


async def _peering(app: web.Application) -> AsyncIterator[None]:
    """Peering and peers; signs a fresh descriptor if the name or base URL changed."""
    sessions, clock, signer = app[SESSIONS], app[CLOCK], app[SIGNER]
    app[PEERING] = Peering(sessions, clock, signer, app[KEY_LOGS], app[SECRETS], app[CONFIG])
    app[PEER_ADMIN] = PeerAdmin(sessions, clock, signer)
    app[COALITIONS] = Coalitions(sessions, clock, signer)
    try:
        await app[PEERING].publish_descriptor()
    except SignerError as exc:  # e.g. keys delegated and the server not restarted
        log.error("no node descriptor signed: %s", exc)
    yield


async def _inbox(app: web.Application) -> AsyncIterator[None]:
    """The inbox and the transport-signature check of requests from other nodes."""
    sessions, config, node_id = app[SESSIONS], app[CONFIG], app[SIGNER].node_id
    app[TRANSPORT] = TransportVerifier(
        sessions, app[KEY_LOGS], app[CLOCK], own_node_id=node_id,
        base_url=config.server.base_url, max_skew=config.federation.max_skew,
        max_validity=config.federation.max_validity,
    )  # fmt: skip
    app[INBOX] = Inbox(sessions, app[KEY_LOGS], node_id)
    yield


async def _federation(app: web.Application) -> AsyncIterator[None]:
    """The outbound client, delivery workers and catch-up; stopped before the database."""
    sessions, clock, config, signer = app[SESSIONS], app[CLOCK], app[CONFIG], app[SIGNER]
    client = FederationClient(config.federation, signer, clock)
    await client.start()
    app[FEDERATION_CLIENT] = client
    app[DELIVERY] = Delivery(sessions, client, clock, config.federation, signer.node_id)
    app[CATCHUP] = Catchup(sessions, client, clock, config.federation, app[INBOX])
    try:
        await app[DELIVERY].start()
        await app[CATCHUP].start()
        yield
    finally:
        await app[CATCHUP].stop()
        await app[DELIVERY].stop()
        await client.close()


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Opens and closes internal decisions on time (the injected clock drives it)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(app[CLOCK], app[SESSIONS], app[SIGNER], stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _calls(app: web.Application) -> AsyncIterator[None]:
    """Publishes this node's tallies of calls, checks activations, voids calls past their
    deadline (node.services.tallies; the injected clock drives it)."""
    scheduler = CallScheduler(app[CLOCK], app[SESSIONS], app[SIGNER], app[TALLY_RULES])
    app[CALL_SCHEDULER] = scheduler
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _tally_rules(config: Config) -> TallyRules:
    calls = config.calls
    return TallyRules(
        bucket=calls.tally_bucket, k=calls.tally_k, interval=calls.tally_interval,
        grace=calls.void_grace,
    )  # fmt: skip


def settle_heap() -> None:
    """Tune the cyclic garbage collector once a serving process has started. What exists
    by then (modules, mappers, templates) lives as long as the process, so it is frozen out
    of every later collection; and the youngest generation is collected every 7 000
    allocations rather than 700, so that a batch of envelopes being ingested is not scanned
    again and again while it is alive. Measured with ``bench/bench_ingest.py``: about 11%
    less CPU per envelope. For ``tadamun serve`` only: tests share their process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7_000, 10, 10)


def _version() -> str:
    try:
        return version("tadamun")
    except PackageNotFoundError:
        return "unknown"


def create_app(
    config: Config,
    clock: Clock | None = None,
    *,
    hasher: PasswordHasher | None = None,
    secrets: NodeSecrets | None = None,
) -> web.Application:
    """The node's application. ``secrets`` default to ``DATA_DIR/keys/secret.key``
    (:class:`~node.services.secrets.SecretMissing` if absent); tests pass a cheap ``hasher``."""
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.server.max_body_bytes
    )
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[SECRETS] = secrets or load_secrets(config.data_dir)
    app[HASHER] = hasher or PasswordHasher()
    app[SIGNER] = load_signer(config.data_dir)
    app[BALLOT_KEYS] = BallotKeys(app[SECRETS].master)
    app[KEY_LOGS] = KeyLogs()
    app[TALLY_RULES] = _tally_rules(config)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_peering)
    app.cleanup_ctx.append(_inbox)
    app.cleanup_ctx.append(_federation)
    app.cleanup_ctx.append(_scheduler)
    app.cleanup_ctx.append(_calls)
    app.router.add_get("/healthz", healthz)
    install_peering(app)  # GET /.well-known/tadamun, POST /federation/v1/peering
    install_inbox(app)  # POST /federation/v1/inbox, GET /federation/v1/log and /keys
    routes = api_routes()
    install(app, routes)
    app[OPENAPI] = build_document(routes, "Tadamun node API", _version())
    setup_pages(app)  # the web interface: its routes, templates and page middleware
    return app
