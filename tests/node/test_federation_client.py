"""The outbound federation client (node.federation.client) against a real aiohttp server on
127.0.0.1 port 0: signatures that verify on the far side with protocol.httpsig, timeouts,
the response size cap, redirects, and refused addresses (literals, and host names after
resolution). Timeouts are tiny real ones; nothing sleeps."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from ipaddress import ip_address

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from node.clock import FakeClock
from node.config import FederationConfig
from node.federation.addresses import AddressPolicy, is_public
from node.federation.client import (
    ClientCode,
    FederationClient,
    FederationClientError,
    GuardedResolver,
    retry_after,
    user_agent,
)
from node.services.signer import Signer
from protocol import SigningKey, digest
from protocol.httpsig import VerifiedRequest, content_digest, verify_request

START = 1_800_000_000
SENDER = Signer(digest(b"sender node"), SigningKey(bytes(range(32))))
DESTINATION = digest(b"receiver node")
LOOPBACK = FederationConfig(allow_networks=("127.0.0.0/8",), request_timeout=10.0)
CAP = 1_000


@dataclass
class Seen:
    method: str
    url: str  # what the far end knows itself as, plus the path and query as received
    headers: dict[str, str]
    body: bytes


@dataclass
class FarEnd:
    """A peer node: records every request, answers according to the path."""

    server: TestServer
    seen: list[Seen] = field(default_factory=list)
    never: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"

    def verify(self, seen: Seen, now: int = START) -> VerifiedRequest:
        return verify_request(
            method=seen.method, url=seen.url, headers=seen.headers, body=seen.body, now=now,
            own_node_id=DESTINATION.hex(),
            resolve_key=lambda k: SENDER.key.private_key().public_key()
            if k == SENDER.node_id.hex() else None,
        )  # fmt: skip


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def far_app(far: list[FarEnd]) -> web.Application:
    async def record(request: web.Request) -> None:
        base = f"http://127.0.0.1:{far[0].server.port}"
        headers = dict(request.headers.items())
        body = await request.read()
        far[0].seen.append(Seen(request.method, base + request.raw_path, headers, body))

    async def echo(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=b"ok:" + far[0].seen[-1].body, content_type="application/msgpack")

    async def status(request: web.Request) -> web.StreamResponse:
        await record(request)
        headers = {"Retry-After": request.query["retry"]} if "retry" in request.query else {}
        return web.Response(status=int(request.match_info["code"]), headers=headers)

    async def slow(request: web.Request) -> web.StreamResponse:
        await record(request)
        await far[0].never.wait()
        return web.Response()

    async def sized(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=b"x" * int(request.match_info["size"]))

    async def streamed(request: web.Request) -> web.StreamResponse:
        """No Content-Length: the cap must hold while reading."""
        await record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(int(request.match_info["chunks"])):
            await response.write(b"y" * 400)
        await response.write_eof()
        return response

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        code = int(request.match_info["code"])
        return web.Response(status=code, headers={"Location": "/echo"})

    async def encoded(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/sized/{size}", sized)
    app.router.add_get("/streamed/{chunks}", streamed)
    app.router.add_route("*", "/redirect/{code}", redirect)
    app.router.add_get("/encoded", encoded)
    return app


@pytest.fixture
async def far() -> AsyncIterator[FarEnd]:
    holder: list[FarEnd] = []
    server = TestServer(far_app(holder), host="127.0.0.1")
    holder.append(FarEnd(server))
    await server.start_server()
    try:
        yield holder[0]
    finally:
        await server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def open_client(clock: FakeClock, config: FederationConfig = LOOPBACK) -> FederationClient:
    return FederationClient(config, SENDER, clock)


async def refused(call: Awaitable[object], code: ClientCode) -> FederationClientError:
    with pytest.raises(FederationClientError) as caught:
        await call
    assert caught.value.code == code.value, caught.value
    return caught.value


# --- signatures -------------------------------------------------------------------------------


async def test_a_post_is_signed_and_verifies_on_the_far_side(far: FarEnd, clock: FakeClock) -> None:
    body = b"\x82\xa2id\xcd\x059\xa4type\xa4ping"
    async with open_client(clock) as client:
        answer = await client.post(far.url("/echo?x=1"), body, destination=DESTINATION)
    assert (answer.status, answer.ok, answer.body) == (200, True, b"ok:" + body)
    assert answer.content_type == "application/msgpack"
    assert answer.retry_after is None
    [seen] = far.seen
    verified = far.verify(seen)
    assert verified.keyid == SENDER.node_id.hex()
    assert (verified.created, verified.expires) == (START, START + 300)
    assert len(verified.nonce) == 22
    assert seen.url.endswith("/echo?x=1")
    assert seen.headers["Content-Type"] == "application/msgpack"
    assert seen.headers["Content-Digest"] == content_digest(body)
    assert seen.headers["Tadamun-Destination"] == DESTINATION.hex()


async def test_only_harmless_headers_are_sent(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock) as client:
        await client.post(far.url("/echo"), b"x", destination=DESTINATION)
    names = {name.lower() for name in far.seen[0].headers}
    assert names == {
        "host", "accept", "accept-encoding", "user-agent", "content-type", "content-length",
        "content-digest", "tadamun-destination", "signature-input", "signature",
    }  # fmt: skip
    assert far.seen[0].headers["User-Agent"] == user_agent()
    assert user_agent().startswith("tadamun/")
    assert far.seen[0].headers["Accept-Encoding"] == "identity"


async def test_a_get_is_signed_over_the_empty_body(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock) as client:
        answer = await client.get(far.url("/echo"), destination=DESTINATION)
    assert answer.status == 200
    [seen] = far.seen
    assert (seen.method, seen.body) == ("GET", b"")
    assert seen.headers["Content-Digest"] == content_digest(b"")
    assert "Content-Type" not in seen.headers
    far.verify(seen)


async def test_every_attempt_has_a_fresh_nonce_and_the_clocks_time(
    far: FarEnd, clock: FakeClock
) -> None:
    async with open_client(clock) as client:
        await client.post(far.url("/echo"), b"same", destination=DESTINATION)
        clock.advance(42)
        await client.post(far.url("/echo"), b"same", destination=DESTINATION)
    first, second = far.verify(far.seen[0]), far.verify(far.seen[1], now=START + 42)
    assert first.nonce != second.nonce
    assert (second.created, second.expires) == (START + 42, START + 342)


async def test_the_validity_follows_the_config(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock, replace(LOOPBACK, max_validity=30)) as client:
        await client.post(far.url("/echo"), b"", destination=DESTINATION)
    assert far.verify(far.seen[0]).expires == START + 30


async def test_an_unsigned_get_carries_no_signature(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock) as client:
        assert (await client.get(far.url("/echo"), destination=None)).status == 200
    names = {name.lower() for name in far.seen[0].headers}
    assert not names & {"signature", "signature-input", "content-digest", "tadamun-destination"}


# --- answers ----------------------------------------------------------------------------------


async def test_error_statuses_are_answers_with_retry_after(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock) as client:
        busy = await client.post(far.url("/status/503?retry=120"), b"", destination=DESTINATION)
        gone = await client.get(far.url("/status/404"), destination=DESTINATION)
    assert (busy.status, busy.ok, busy.retry_after) == (503, False, 120)
    assert (gone.status, gone.retry_after) == (404, None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None), ("0", 0), ("120", 120), (" 7 ", 7), ("99999999999999", 9_999_999_999),
        (formatdate(START + 100, usegmt=True), 100), (formatdate(START - 100, usegmt=True), 0),
        (formatdate(START + 100, usegmt=True).replace(" GMT", ""), 100),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0), ("Fri, 32 Jan 2027 08:00:00 GMT", None),
        ("-5", None), ("1.5", None), ("soon", None), ("", None), ("٣", None),
        ("9" * 5000, 9_999_999_999),
    ],
)  # fmt: skip
def test_retry_after_values(value: str | None, seconds: int | None) -> None:
    assert retry_after(value, START) == seconds


# --- limits -----------------------------------------------------------------------------------


async def test_a_peer_that_never_answers_times_out(far: FarEnd, clock: FakeClock) -> None:
    config = replace(LOOPBACK, request_timeout=0.05)
    async with open_client(clock, config) as client:
        error = await refused(
            client.get(far.url("/slow"), destination=DESTINATION), ClientCode.PEER_TIMEOUT
        )
    assert error.retryable
    assert error.status == 504
    assert len(far.seen) == 1


@pytest.mark.parametrize("path", ["/sized/1001", "/streamed/3", "/streamed/1000"])
async def test_an_oversized_answer_is_refused(far: FarEnd, clock: FakeClock, path: str) -> None:
    async with open_client(clock, replace(LOOPBACK, max_response_bytes=CAP)) as client:
        error = await refused(
            client.get(far.url(path), destination=DESTINATION), ClientCode.RESPONSE_TOO_LARGE
        )
        assert not error.retryable
        # The connection was dropped, not left half-read: the next request works.
        assert (await client.get(far.url("/sized/1000"), destination=DESTINATION)).ok


@pytest.mark.parametrize("path", ["/sized/1000", "/streamed/2", "/sized/0"])
async def test_an_answer_up_to_the_cap_is_read_whole(
    far: FarEnd, clock: FakeClock, path: str
) -> None:
    async with open_client(clock, replace(LOOPBACK, max_response_bytes=CAP)) as client:
        answer = await client.get(far.url(path), destination=DESTINATION)
    assert len(answer.body) == {"/sized/1000": 1000, "/streamed/2": 800, "/sized/0": 0}[path]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirects_are_refused_not_followed(far: FarEnd, clock: FakeClock, code: int) -> None:
    async with open_client(clock) as client:
        error = await refused(
            client.post(far.url(f"/redirect/{code}"), b"x", destination=DESTINATION),
            ClientCode.REDIRECT_REFUSED,
        )
    assert not error.retryable
    assert [seen.url.rsplit("/", 2)[-2:] for seen in far.seen] == [["redirect", str(code)]]


async def test_a_content_encoded_answer_is_refused(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock) as client:
        await refused(
            client.get(far.url("/encoded"), destination=DESTINATION), ClientCode.PEER_BAD_RESPONSE
        )


async def test_a_closed_port_is_unreachable(clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with open_client(clock) as client:
        error = await refused(
            client.get(f"http://127.0.0.1:{port}/", destination=DESTINATION),
            ClientCode.PEER_UNREACHABLE,
        )
    assert error.retryable
    assert error.status == 502
    assert str(port) not in error.message  # the safe message names no address


async def test_an_answer_that_is_not_http_is_a_bad_response(clock: FakeClock) -> None:
    async def garbage(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with open_client(clock) as client:
            error = await refused(
                client.get(f"http://127.0.0.1:{port}/", destination=DESTINATION),
                ClientCode.PEER_BAD_RESPONSE,
            )
    finally:
        server.close()
        await server.wait_closed()
    assert error.retryable


# --- addresses --------------------------------------------------------------------------------


async def test_loopback_is_refused_by_default(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock, FederationConfig()) as client:
        error = await refused(
            client.post(far.url("/echo"), b"x", destination=DESTINATION),
            ClientCode.ADDRESS_REFUSED,
        )
    assert not error.retryable
    assert far.seen == []


async def test_a_host_name_resolving_to_loopback_is_refused(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock, FederationConfig()) as client:
        await refused(
            client.get(far.url("/echo", host="localhost"), destination=DESTINATION),
            ClientCode.ADDRESS_REFUSED,
        )
    assert far.seen == []


async def test_allowed_networks_open_loopback(far: FarEnd, clock: FakeClock) -> None:
    async with open_client(clock) as client:
        by_address = await client.get(far.url("/echo"), destination=DESTINATION)
        by_name = await client.get(far.url("/echo", host="localhost"), destination=DESTINATION)
    assert (by_address.status, by_name.status) == (200, 200)
    assert len(far.seen) == 2


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1",  # noqa: S104 - a refused destination, not a bind "255.255.255.255", "[::1]", "[::]", "[fc00::1]", "[fd00::1]",
        "[fe80::1]", "[ff02::1]", "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[::ffff:7f00:1]",
        "[2002:7f00:1::1]", "[2002:a00:1::]", "[64:ff9b::a9fe:a9fe]", "[::127.0.0.1]",
    ],
)  # fmt: skip
async def test_non_public_literals_are_refused_before_connecting(
    far: FarEnd, clock: FakeClock, host: str
) -> None:
    # Forms of 127.0.0.1 would reach the far end if a connection were attempted.
    async with open_client(clock, FederationConfig(request_timeout=0.5)) as client:
        await refused(
            client.get(far.url("/echo", host=host), destination=DESTINATION),
            ClientCode.ADDRESS_REFUSED,
        )
    assert far.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "127.0.0.1/echo",
        "http:///echo", "http://user:pw@127.0.0.1/echo", "http://user@127.0.0.1/echo",
        "http://127.1/", "http://2130706433/", "http://0177.0.0.1/", "http://[::1/",
        "http://127.0.0.1:99999/", "https://",
    ],
)  # fmt: skip
async def test_urls_that_are_not_plain_http_are_refused(
    far: FarEnd, clock: FakeClock, url: str
) -> None:
    async with open_client(clock) as client:
        error = await refused(client.get(url, destination=DESTINATION), ClientCode.URL_REFUSED)
    assert error.status == 400
    assert far.seen == []


@pytest.mark.parametrize("host", ["0x7f.0.0.1", "0x7f000001", "LOCALHOST"])
async def test_names_the_resolver_maps_to_loopback_are_refused(
    far: FarEnd, clock: FakeClock, host: str
) -> None:
    """Not address literals for aiohttp, so they go through the resolver: refused there."""
    async with open_client(clock, FederationConfig()) as client:
        await refused(
            client.get(far.url("/echo", host=host), destination=DESTINATION),
            ClientCode.ADDRESS_REFUSED,
        )
    assert far.seen == []


async def test_a_client_that_is_not_started_refuses(clock: FakeClock) -> None:
    client = open_client(clock)
    with pytest.raises(RuntimeError):
        await client.get("http://127.0.0.1/", destination=DESTINATION)
    await client.start()
    await client.close()
    await client.close()  # closing twice is harmless
    with pytest.raises(RuntimeError):
        await client.get("http://127.0.0.1/", destination=DESTINATION)


class Answers(AbstractResolver):
    """Stands in for DNS (not ours): answers each lookup with the next list of addresses."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0,
                          flags=0)
            for address in self.answers.pop(0)
        ]  # fmt: skip

    async def close(self) -> None:
        pass


async def test_the_resolver_keeps_only_permitted_addresses() -> None:
    dns = Answers(
        ["93.184.215.14", "127.0.0.1", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::1"],
        ["93.184.215.14"],
        ["127.0.0.1"],  # rebinding: the same name now points at loopback
        ["10.1.2.3", "fe80::1%1", "not-an-address"],
    )
    resolver = GuardedResolver(AddressPolicy(), dns)
    first = await resolver.resolve("peer.example", 443)
    assert [r["host"] for r in first] == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert len(await resolver.resolve("peer.example", 443)) == 1
    for _ in range(2):
        with pytest.raises(OSError, match="refused addresses"):
            await resolver.resolve("peer.example", 443)
    await resolver.close()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True), ("93.184.215.14", True), ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True), ("2002:808:808::1", True), ("64:ff9b::808:808", True),
        ("127.0.0.1", False), ("127.255.255.254", False), ("10.0.0.1", False),
        ("172.31.255.255", False), ("192.168.0.1", False), ("169.254.0.1", False),
        ("100.64.0.1", False), ("0.0.0.0", False),  # noqa: S104 ("0.1.2.3", False), ("224.0.0.251", False),
        ("240.0.0.1", False), ("255.255.255.255", False), ("192.0.2.1", False),
        ("198.51.100.1", False), ("203.0.113.1", False), ("198.18.0.1", False), ("::1", False),
        ("::", False), ("fc00::1", False), ("fd12:3456::1", False), ("fe80::1", False),
        ("ff02::1", False), ("ff0e::1", False), ("2001:db8::1", False), ("::ffff:127.0.0.1", False),
        ("::ffff:192.168.1.1", False), ("2002:7f00:1::", False), ("2002:c0a8:101::", False),
        ("64:ff9b::7f00:1", False), ("::127.0.0.1", False), ("2001::1", False), ("100::1", False),
    ],
)  # fmt: skip
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ip_address(address)) is public
    assert AddressPolicy().permits(ip_address(address)) is public


def test_allowed_networks_cover_embedded_forms_too() -> None:
    policy = AddressPolicy(["127.0.0.0/8", "fd00::/8"])
    for address in ("127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "2002:7f00:1::", "fd00::5"):
        assert policy.permits(ip_address(address)), address
    for address in ("10.0.0.1", "::1", "fc00::1", "169.254.169.254"):
        assert not policy.permits(ip_address(address)), address
