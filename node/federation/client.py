"""The one outbound HTTP client of federation: delivery, catch-up and peering use it.

Every request is signed as SPEC §10.5 says, with the node's operational key (``keyid`` = the
node id, a fresh nonce per attempt, ``created`` and ``expires`` from the injected clock). The
client is hardened (STYLE.md §16):

* only ``http``/``https`` URLs, without userinfo; connect and total timeouts from the config;
* the response body is read in chunks and refused as soon as it passes ``max_response_bytes``;
  no content decoding (``Accept-Encoding: identity``), so the cap is the bytes received;
* redirects are never followed: a 3xx answer is an error, so a peer cannot bounce us elsewhere;
* non-public addresses are refused (``addresses.AddressPolicy``): IP literals before any
  connection, host names on every address they resolve to (:class:`GuardedResolver`), and
  only the addresses checked are connected to, so DNS rebinding gains nothing;
* no cookies, no proxies from the environment, a User-Agent naming only tadamun and its version.

Failures are :class:`FederationClientError` with a stable code and ``retryable``, so delivery
can tell a peer that is down (retry with backoff) from a request that can never succeed.
HTTP error statuses are not errors here: the caller gets the status and decides.
"""

from __future__ import annotations

import email.utils
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from node.clock import Clock
from node.config import FederationConfig
from node.errors import NodeError
from node.federation.addresses import AddressPolicy, parse_address
from node.services.signer import Signer
from protocol import HttpSignatureError
from protocol.httpsig import sign_request

__all__ = [
    "ClientCode",
    "FederationClient",
    "FederationClientError",
    "FederationResponse",
    "GuardedResolver",
    "retry_after",
    "user_agent",
]

MSGPACK: Final = "application/msgpack"
_CHUNK: Final = 65_536


class ClientCode(StrEnum):
    URL_REFUSED = "url_refused"  # not http(s), userinfo, no host, unparseable
    ADDRESS_REFUSED = "address_refused"  # a non-public address outside allow_networks
    PEER_UNREACHABLE = "peer_unreachable"  # DNS failure, refused, reset, disconnected
    PEER_TIMEOUT = "peer_timeout"
    PEER_BAD_RESPONSE = "peer_bad_response"  # not HTTP, truncated, content-encoded
    REDIRECT_REFUSED = "redirect_refused"
    RESPONSE_TOO_LARGE = "response_too_large"


RETRYABLE: Final = frozenset(
    {ClientCode.PEER_UNREACHABLE, ClientCode.PEER_TIMEOUT, ClientCode.PEER_BAD_RESPONSE}
)
_STATUS: Final = {ClientCode.URL_REFUSED: 400, ClientCode.ADDRESS_REFUSED: 400,
                  ClientCode.PEER_TIMEOUT: 504}  # fmt: skip
_SAFE: Final = {
    ClientCode.URL_REFUSED: "that address is not a usable http(s) URL",
    ClientCode.ADDRESS_REFUSED: "that address is not a public one",
    ClientCode.PEER_UNREACHABLE: "the other node could not be reached",
    ClientCode.PEER_TIMEOUT: "the other node did not answer in time",
    ClientCode.PEER_BAD_RESPONSE: "the other node gave an answer that is not usable",
    ClientCode.REDIRECT_REFUSED: "the other node answered with a redirect",
    ClientCode.RESPONSE_TOO_LARGE: "the other node's answer is too large",
}


class FederationClientError(NodeError):
    """An outbound request failed; ``code`` is stable, ``retryable`` says if trying later helps."""

    def __init__(self, code: ClientCode, internal: str) -> None:
        super().__init__(_STATUS.get(code, 502), code.value, _SAFE[code], internal)
        self.client_code = code

    @property
    def retryable(self) -> bool:
        return self.client_code in RETRYABLE


@dataclass(frozen=True, slots=True)
class FederationResponse:
    """What the peer answered: status, the body (at most ``max_response_bytes``), and the
    header values callers need."""

    status: int
    body: bytes
    content_type: str  # media type without parameters, lower-case; "" if absent
    retry_after: int | None  # seconds from now (delta or HTTP-date), None if absent or bad

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Refused(OSError):
    """Raised by :class:`GuardedResolver`; aiohttp wraps OSErrors, the client unwraps it."""


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner``, then keeps only the addresses ``policy`` permits."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if self._permits(r["host"])]
        if not kept:
            raise _Refused(f"{host} resolves only to refused addresses")
        return kept

    def _permits(self, text: str) -> bool:
        address = parse_address(text)
        return address is not None and self._policy.permits(address)

    async def close(self) -> None:
        await self._inner.close()


def user_agent() -> str:
    """``tadamun/<version>``: nothing about the node, its members or the platform."""
    try:
        return f"tadamun/{version('tadamun')}"
    except PackageNotFoundError:
        return "tadamun"


class FederationClient:
    """One aiohttp session for all of federation; open with ``async with`` or :meth:`start`."""

    def __init__(self, config: FederationConfig, signer: Signer, clock: Clock) -> None:
        self._config = config
        self._signer = signer
        self._clock = clock
        self._policy = AddressPolicy(config.allow_networks)
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        self._resolver = GuardedResolver(self._policy, aiohttp.DefaultResolver())
        connector = aiohttp.TCPConnector(resolver=self._resolver, ttl_dns_cache=10)
        timeout = aiohttp.ClientTimeout(
            total=self._config.request_timeout, sock_connect=self._config.connect_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": user_agent(), "Accept-Encoding": "identity"},
        )  # fmt: skip

    async def close(self) -> None:
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()

    async def __aenter__(self) -> FederationClient:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def post(
        self, url: str, body: bytes, *, destination: bytes, content_type: str = MSGPACK
    ) -> FederationResponse:
        """A signed POST to the node ``destination`` (its 32-byte node id)."""
        return await self._request("POST", url, body, destination, content_type)

    async def get(self, url: str, *, destination: bytes | None) -> FederationResponse:
        """A signed GET; ``destination=None`` sends it unsigned, only for the self-certifying
        ``/.well-known/tadamun`` of a node whose id is not known yet (SPEC §14)."""
        return await self._request("GET", url, b"", destination, None)

    async def _request(
        self,
        method: str,
        url: str,
        body: bytes,
        destination: bytes | None,
        content_type: str | None,
    ) -> FederationResponse:
        if self._session is None:
            raise RuntimeError("FederationClient used before start() or after close()")
        target = self._target(url)
        headers = {"Content-Type": content_type} if content_type else {}
        if destination is not None:
            headers = self._sign(method, str(target), body, destination, headers)
        try:
            async with self._session.request(
                method, target, data=body or None, headers=headers, allow_redirects=False
            ) as response:
                return await self._answer(response)
        except FederationClientError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _classify(exc, target) from exc

    def _target(self, url: str) -> URL:
        """The URL to request, refused unless http(s) with a host and no userinfo, and, if
        the host is an address literal, unless that address is permitted."""
        try:
            target = URL(url)
            host = target.raw_host
        except (ValueError, TypeError) as exc:
            raise FederationClientError(ClientCode.URL_REFUSED, f"{url!r}: {exc}") from exc
        if target.scheme not in ("http", "https") or not host or target.raw_user is not None:
            raise FederationClientError(ClientCode.URL_REFUSED, f"{url!r}")
        if ":" in host or host.replace(".", "").isdigit():  # aiohttp's test for a literal
            address = parse_address(host)
            if address is None:
                raise FederationClientError(ClientCode.URL_REFUSED, f"{url!r}: bad address")
            if not self._policy.permits(address):
                raise FederationClientError(ClientCode.ADDRESS_REFUSED, f"{url!r}")
        return target

    def _sign(
        self, method: str, url: str, body: bytes, destination: bytes, headers: dict[str, str]
    ) -> dict[str, str]:
        created = self._clock.now()
        try:
            return sign_request(
                method=method, url=url, body=body, key=self._signer.key.private_key(),
                keyid=self._signer.node_id.hex(), destination=destination.hex(),
                created=created, expires=created + self._config.max_validity,
                nonce=secrets.token_urlsafe(16), extra_headers=headers,
            )  # fmt: skip
        except HttpSignatureError as exc:  # a URL the signature profile refuses (§10.4)
            raise FederationClientError(ClientCode.URL_REFUSED, f"{url!r}: {exc}") from exc

    async def _answer(self, response: aiohttp.ClientResponse) -> FederationResponse:
        if 300 <= response.status < 400:
            response.close()
            raise FederationClientError(
                ClientCode.REDIRECT_REFUSED, f"{response.status} from {response.url}"
            )
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            response.close()
            raise FederationClientError(ClientCode.PEER_BAD_RESPONSE, "content-encoded body")
        body = await self._read(response)
        return FederationResponse(
            status=response.status,
            body=body,
            content_type=_media_type(response),
            retry_after=retry_after(response.headers.get("Retry-After"), self._clock.now()),
        )  # fmt: skip

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused as soon as it passes the cap (announced or actually sent)."""
        cap = self._config.max_response_bytes
        announced = response.content_length
        if announced is not None and announced > cap:
            response.close()
            raise _too_large(f"Content-Length {announced} > {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                response.close()
                raise _too_large(f"body passed {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _media_type(response: aiohttp.ClientResponse) -> str:
    # aiohttp reports application/octet-stream when the header is absent; we say "".
    return response.content_type.lower() if "Content-Type" in response.headers else ""


def _too_large(internal: str) -> FederationClientError:
    return FederationClientError(ClientCode.RESPONSE_TOO_LARGE, internal)


def _classify(exc: aiohttp.ClientError | TimeoutError, target: URL) -> FederationClientError:
    where = f"{target.host}:{target.port}"
    if isinstance(exc, TimeoutError):  # aiohttp's timeout errors are TimeoutErrors too
        return FederationClientError(ClientCode.PEER_TIMEOUT, f"{where}: {exc!r}")
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, _Refused):
        return FederationClientError(ClientCode.ADDRESS_REFUSED, f"{where}: {exc.os_error}")
    if isinstance(exc, aiohttp.InvalidURL):
        return FederationClientError(ClientCode.URL_REFUSED, f"{where}: {exc!r}")
    if isinstance(exc, aiohttp.ClientConnectionError):  # DNS, refused, reset, disconnected
        return FederationClientError(ClientCode.PEER_UNREACHABLE, f"{where}: {exc!r}")
    return FederationClientError(ClientCode.PEER_BAD_RESPONSE, f"{where}: {exc!r}")


def retry_after(value: str | None, now: int) -> int | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), at least 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return int(value) if len(value) <= 10 else 9_999_999_999  # the caller clamps it
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP-date is always GMT
    return max(0, int(when.timestamp()) - now)
