"""RFC 9421 / RFC 9530 transport signatures and the Tadamun profile (SPEC.md §10)."""

from __future__ import annotations

import base64
import hashlib
import json
import string
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given
from hypothesis import strategies as st

from protocol import decode, encode
from protocol.errors import ErrorCode, HttpSignatureError
from protocol.httpsig import (
    PROFILE_COMPONENTS,
    SignatureParams,
    VerifiedRequest,
    check_content_digest,
    content_digest,
    parse_signature,
    parse_signature_input,
    sign_request,
    signature_base,
    verify_http_signature,
    verify_request,
)

VECTORS = Path(__file__).parents[1] / "vectors" / "http_signatures.json"

MISSING = ErrorCode.HTTPSIG_MISSING
MALFORMED = ErrorCode.HTTPSIG_MALFORMED
BAD_DIGEST = ErrorCode.HTTPSIG_BAD_DIGEST
BAD_SIGNATURE = ErrorCode.HTTPSIG_BAD_SIGNATURE
EXPIRED = ErrorCode.HTTPSIG_EXPIRED
FROM_FUTURE = ErrorCode.HTTPSIG_FROM_FUTURE
WRONG_TARGET = ErrorCode.HTTPSIG_WRONG_TARGET
UNKNOWN_KEY = ErrorCode.HTTPSIG_UNKNOWN_KEY

# --- RFC 9421 Appendix B.1.4 key, B.2 test-request, B.2.6 signature ---------------------------


def _rfc_key() -> Ed25519PrivateKey:
    key = load_pem_private_key(
        b"-----BEGIN PRIVATE KEY-----\n"
        b"MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
        b"-----END PRIVATE KEY-----\n",
        None,
    )
    assert isinstance(key, Ed25519PrivateKey)
    return key


RFC_KEY = _rfc_key()
RFC_PUBLIC_RAW_B64URL = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"  # JWK "x", RFC 9421 B.1.4
RFC_URL = "https://example.com/foo?param=Value&Pet=dog"
RFC_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1"
    "u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
)
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+"
    "AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
    "Signature-Input": 'sig-b26=("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"',
    "Signature": RFC_SIGNATURE,
}
RFC_INPUT = RFC_HEADERS["Signature-Input"]
RFC_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)


def rfc_resolver(keyid: str) -> Ed25519PublicKey | None:
    return RFC_KEY.public_key() if keyid == "test-key-ed25519" else None


def test_rfc9421_b26_public_key_matches_the_rfc() -> None:
    raw = RFC_KEY.public_key().public_bytes_raw()
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == RFC_PUBLIC_RAW_B64URL


def test_rfc9421_b26_signature_base_is_the_rfc_text() -> None:
    params = parse_signature_input(RFC_HEADERS["Signature-Input"])["sig-b26"]
    base = signature_base(method="POST", url=RFC_URL, headers=RFC_HEADERS, params=params)
    assert base == RFC_BASE.encode("ascii")


def test_rfc9421_b26_signing_reproduces_the_rfc_signature() -> None:
    signature = base64.b64encode(RFC_KEY.sign(RFC_BASE.encode("ascii"))).decode()
    assert f"sig-b26=:{signature}:" == RFC_SIGNATURE


@pytest.mark.parametrize("label", ["sig-b26", None])
def test_rfc9421_b26_verifies(label: str | None) -> None:
    params = verify_http_signature(
        method="POST", url=RFC_URL, headers=RFC_HEADERS, resolve_key=rfc_resolver, label=label
    )
    assert params.value("created") == 1618884473
    assert params.value("keyid") == "test-key-ed25519"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Date": "Wed, 21 Apr 2021 02:07:55 GMT"}, BAD_SIGNATURE),
        ({"Content-Type": "text/plain"}, BAD_SIGNATURE),
        ({"Signature": RFC_SIGNATURE.replace("sig-b26", "sig-b27")}, MALFORMED),
        ({"Signature-Input": RFC_INPUT + ';alg="rsa-v1_5-sha256"'}, MALFORMED),
        ({"Signature-Input": 'sig-b26=("date");created=1618884473'}, MALFORMED),
        ({"Signature-Input": RFC_INPUT.replace("test-", "other-")}, UNKNOWN_KEY),
    ],
)
def test_rfc9421_b26_generic_rejections(change: dict[str, str], code: ErrorCode) -> None:
    with pytest.raises(HttpSignatureError) as info:
        verify_http_signature(
            method="POST", url=RFC_URL, headers=RFC_HEADERS | change, resolve_key=rfc_resolver
        )
    assert info.value.code == code


def test_generic_verification_needs_a_label_when_there_are_several() -> None:
    headers = RFC_HEADERS | {
        "Signature-Input": RFC_HEADERS["Signature-Input"] + ', b=("date");keyid="k"',
        "Signature": RFC_SIGNATURE + ", b=:AAAA:",
    }
    with pytest.raises(HttpSignatureError) as info:
        verify_http_signature(method="POST", url=RFC_URL, headers=headers, resolve_key=rfc_resolver)
    assert info.value.code == MALFORMED
    verify_http_signature(
        method="POST", url=RFC_URL, headers=headers, resolve_key=rfc_resolver, label="sig-b26"
    )


# --- Content-Digest (RFC 9530; SPEC.md §10.2) -------------------------------------------------

BODY = b'{"hello": "world"}'  # the RFC 9530 example body
SHA256 = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
SHA512 = base64.b64encode(hashlib.sha512(BODY).digest()).decode()
WRONG = base64.b64encode(hashlib.sha256(b"other").digest()).decode()


def test_content_digest_is_the_rfc9530_example() -> None:
    assert content_digest(BODY) == f"sha-256=:{SHA256}:"


@pytest.mark.parametrize(
    "header",
    [
        f"sha-256=:{SHA256}:",
        f"sha-512=:{SHA512}:",
        RFC_HEADERS["Content-Digest"],  # RFC 9421 B.2 test-request, sha-512
        f"sha-256=:{SHA256}:, sha-512=:{SHA512}:",
        f"md5=:AAAAAAAAAAAAAAAAAAAAAA==:, sha-256=:{SHA256}:",
        f"  sha-512=:{SHA512}:,\tunixsum=:AAAA:  ",
    ],
)
def test_content_digest_accepted(header: str) -> None:
    check_content_digest(header, BODY)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, MISSING),
        ("", BAD_DIGEST),
        ("garbage", BAD_DIGEST),
        ("md5=:AAAAAAAAAAAAAAAAAAAAAA==:", BAD_DIGEST),
        (f"sha-256=:{WRONG}:", BAD_DIGEST),
        (f"sha-256=:{SHA256}:, sha-512=:{WRONG}:", BAD_DIGEST),
        (f"SHA-256=:{SHA256}:", BAD_DIGEST),
        (f"sha-256={SHA256}", BAD_DIGEST),
        (f"sha-256=:{SHA256}:;p=1", BAD_DIGEST),
        (f"sha-256=:{SHA256}:, sha-256=:{SHA256}:", BAD_DIGEST),
        (f"sha-256=:{SHA256[:-1]}:", BAD_DIGEST),
        (f"sha-256=:{SHA256}:,", BAD_DIGEST),
    ],
)
def test_content_digest_rejected(header: str | None, code: ErrorCode) -> None:
    with pytest.raises(HttpSignatureError) as info:
        check_content_digest(header, BODY)
    assert info.value.code == code


# --- Structured fields and @signature-params (SPEC.md §10.3, §10.4) ---------------------------


@pytest.mark.parametrize(
    ("text", "label", "serialized"),
    [
        (' sig=( "@method"  "@path" );created=1 ', "sig", '("@method" "@path");created=1'),
        ('a=("@method"), b=();keyid="k"', "b", '();keyid="k"'),
        ('sig=("@method");created=1; keyid="k"', "sig", '("@method");created=1;keyid="k"'),
        ('sig=();nonce="a\\"b\\\\c"', "sig", '();nonce="a\\"b\\\\c"'),
        ("sig=();created=007", "sig", "();created=7"),
        (RFC_HEADERS["Signature-Input"], "sig-b26", RFC_BASE.split('"@signature-params": ')[1]),
    ],
)
def test_signature_input_parses_and_serializes(text: str, label: str, serialized: str) -> None:
    assert parse_signature_input(text)[label].serialize() == serialized


def test_signature_input_string_escapes_are_decoded() -> None:
    assert parse_signature_input('s=();nonce="a\\"b\\\\c"')["s"].value("nonce") == 'a"b\\c'


@pytest.mark.parametrize(
    "text",
    [
        "",
        'sig=("@method"',
        'sig=("@method");created=1,',
        "sig",
        'sig=("@method");created=1.5',
        'sig=("@method");created=1234567890123456',
        'sig=("@method");created=-1',
        'sig=("@method");created="1"',
        'sig=("@method");keyid=abc',
        'sig=("@method");keyid',
        'sig=("@method");foo="x"',
        'sig=("@method");created=1;created=2',
        'sig=("@method" "@method")',
        'sig=("@method";req)',
        'sig=("content-type";sf)',
        'sig=("Content-Type")',
        'sig=("@status")',
        'sig=("@signature-params")',
        'sig=("@query-param")',
        "sig=(@method)",
        'sig=("@method""@path")',
        'Sig=("@method")',
        'sig=("@method"), sig=("@path")',
        'sig=("@method") x',
        'sig=("caf\u00e9")',
        'sig=();nonce="a\\b"',
        'sig=() ;created=1',
        'sig=:AAAA:',
    ],
)  # fmt: skip
def test_signature_input_rejected(text: str) -> None:
    with pytest.raises(HttpSignatureError) as info:
        parse_signature_input(text)
    assert info.value.code == MALFORMED


def test_signature_parses() -> None:
    assert parse_signature("a=:YQ==:, b=::") == {"a": b"a", "b": b""}


@pytest.mark.parametrize(
    "text",
    ["", "sig=:abc:", "sig=:YQ=:", "sig=:YR==:", "sig=:YQ==", "sig=abc", "sig=:Y Q==:",
     "sig=:YQ==:;x=1", "sig=:YQ==:, sig=:YQ==:", "sig=:YQ-_:", "sig=(\"a\")"],
)  # fmt: skip
def test_signature_rejected(text: str) -> None:
    with pytest.raises(HttpSignatureError) as info:
        parse_signature(text)
    assert info.value.code == MALFORMED


def test_signature_params_refuse_bad_values_at_construction() -> None:
    for components, params in [
        (("@method", "@method"), ()),
        (("X-Upper",), ()),
        ((), (("created", True),)),
        ((), (("nonce", "tab\there"),)),
        ((), (("created", 10**15),)),
    ]:
        with pytest.raises(HttpSignatureError):
            SignatureParams(components, params)  # type: ignore[arg-type]


# --- Signature base components (RFC 9421 §2.1, §2.2; SPEC.md §10.4) ----------------------------


@pytest.mark.parametrize(
    ("component", "url", "value"),
    [
        ("@method", "https://example.com/", "POST"),
        ("@target-uri", "https://www.example.com/path?param=value",
         "https://www.example.com/path?param=value"),
        ("@authority", "https://www.example.com/path?param=value", "www.example.com"),
        ("@authority", "https://WWW.Example.COM:443/", "www.example.com"),
        ("@authority", "http://example.com:80/", "example.com"),
        ("@authority", "http://example.com:8080/", "example.com:8080"),
        ("@authority", "https://example.com:80/", "example.com:80"),
        ("@authority", "http://[2001:DB8::1]:8080/", "[2001:db8::1]:8080"),
        ("@scheme", "HTTP://example.com/", "http"),
        ("@scheme", "https://example.com/", "https"),
        ("@request-target", "https://www.example.com/path?param=value", "/path?param=value"),
        ("@request-target", "https://example.com", "/"),
        ("@path", "https://www.example.com/path?param=value", "/path"),
        ("@path", "https://example.com", "/"),
        ("@path", "https://example.com/a%20b/", "/a%20b/"),
        ("@query", "https://a.example/path?param=value&foo=bar&baz=bat%2Dman",
         "?param=value&foo=bar&baz=bat%2Dman"),
        ("@query", "https://www.example.com/path", "?"),
    ],
)  # fmt: skip
def test_derived_component_values(component: str, url: str, value: str) -> None:
    params = SignatureParams((component,))
    base = signature_base(method="POST", url=url, headers={}, params=params)
    assert base.decode("ascii").split("\n")[0] == f'"{component}": {value}'


@pytest.mark.parametrize(
    ("headers", "line"),
    [
        ({"X-Thing": "value"}, '"x-thing": value'),
        ({"x-THING": " \t padded \t "}, '"x-thing": padded'),
        ({"X-Thing": ""}, '"x-thing": '),
        ({"X-Thing": "a, b"}, '"x-thing": a, b'),
    ],
)
def test_header_components(headers: dict[str, str], line: str) -> None:
    params = SignatureParams(("x-thing",))
    base = signature_base(method="GET", url="https://a.example/", headers=headers, params=params)
    assert base.decode("ascii").split("\n")[0] == line


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "https://a.example/", {}),
        ("GET", "https://a.example/", {"X-Thing": "a", "x-thing": "b"}),
        ("GET", "https://a.example/", {"X-Thing": "a\nb"}),
        ("GET", "https://a.example/", {"X-Thing": "caf\u00e9"}),
        ("G ET", "https://a.example/", {"X-Thing": "a"}),
        ("", "https://a.example/", {"X-Thing": "a"}),
        ("GET", "ftp://a.example/", {"X-Thing": "a"}),
        ("GET", "https://user@a.example/", {"X-Thing": "a"}),
        ("GET", "https://a.example/#frag", {"X-Thing": "a"}),
        ("GET", "https://a.example:99999/", {"X-Thing": "a"}),
        ("GET", "https://a.example:abc/", {"X-Thing": "a"}),
        ("GET", "https://a.example:0/", {"X-Thing": "a"}),
        ("GET", "/relative", {"X-Thing": "a"}),
        ("GET", "https:///no-host", {"X-Thing": "a"}),
        ("GET", "https://a.example/a b", {"X-Thing": "a"}),
        ("GET", "https://[::1/", {"X-Thing": "a"}),
    ],
)
def test_signature_base_rejections(method: str, url: str, headers: dict[str, str]) -> None:
    params = SignatureParams(("x-thing",))
    with pytest.raises(HttpSignatureError) as info:
        signature_base(method=method, url=url, headers=headers, params=params)
    assert info.value.code == MALFORMED


# --- The Tadamun profile (SPEC.md §10.5, §10.6) ------------------------------------------------

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
SENDER = hashlib.sha256(b"sender").hexdigest()
RECEIVER = hashlib.sha256(b"receiver").hexdigest()
STRANGER = hashlib.sha256(b"stranger").hexdigest()
URL = "https://node-b.example/federation/v1/inbox"
PAYLOAD = b"\x82\xa2id\x01\xa4type\xa4ping"  # canonical msgpack {"id": 1, "type": "ping"}
CREATED = 1_700_000_000
NONCE = "n0nce-0123456789_AB"
SIGNED_NAMES = ("Content-Digest", "Tadamun-Destination", "Signature-Input", "Signature")


def resolver(keyid: str) -> Ed25519PublicKey | None:
    return KEY.public_key() if keyid == SENDER else None


@dataclass(frozen=True)
class Req:
    """A request as the receiver sees it, plus the receiver's view of the world."""

    headers: Mapping[str, str]
    method: str = "POST"
    url: str = URL
    body: bytes = PAYLOAD
    now: int = CREATED + 5
    own: str = RECEIVER

    def verify(self) -> VerifiedRequest:
        return verify_request(
            method=self.method,
            url=self.url,
            headers=self.headers,
            body=self.body,
            now=self.now,
            own_node_id=self.own,
            resolve_key=resolver,
        )

    def header(self, name: str, value: str | None) -> Req:
        """A copy with header ``name`` replaced, or removed when ``value`` is None."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        return replace(self, headers=headers if value is None else headers | {name: value})


def signed(
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = PAYLOAD,
    key: Ed25519PrivateKey = KEY,
    keyid: str = SENDER,
    destination: str = RECEIVER,
    created: int = CREATED,
    expires: int = CREATED + 300,
    nonce: str = NONCE,
) -> Req:
    headers = sign_request(
        method=method, url=url, body=body, key=key, keyid=keyid, destination=destination,
        created=created, expires=expires, nonce=nonce,
    )  # fmt: skip
    return Req(headers=headers, method=method, url=url, body=body)


def resigned(
    req: Req,
    components: tuple[str, ...] = PROFILE_COMPONENTS,
    drop: tuple[str, ...] = (),
    **changes: int | str,
) -> Req:
    """``req`` validly signed again over hand-made parameters, to isolate one profile check."""
    values: dict[str, int | str] = {
        "created": CREATED, "expires": CREATED + 300, "nonce": NONCE,
        "keyid": SENDER, "alg": "ed25519", "tag": "tadamun-fed-v1",
    }  # fmt: skip
    values.update(changes)
    params = SignatureParams(components, tuple((k, v) for k, v in values.items() if k not in drop))
    base = signature_base(method=req.method, url=req.url, headers=req.headers, params=params)
    signature = base64.b64encode(KEY.sign(base)).decode()
    req = req.header("Signature-Input", f"tadamun={params.serialize()}")
    return req.header("Signature", f"tadamun=:{signature}:")


GOOD = signed()


def _flip_signature_bit(req: Req) -> Req:
    raw = bytearray(base64.b64decode(req.headers["Signature"].split(":")[1]))
    raw[10] ^= 0x40
    return req.header("Signature", f"tadamun=:{base64.b64encode(raw).decode()}:")


def _edit(name: str, old: str, new: str, req: Req = GOOD) -> Req:
    return req.header(name, req.headers[name].replace(old, new, 1))


def _repeated(name: str) -> Req:
    return replace(GOOD, headers=dict(GOOD.headers) | {name.lower(): GOOD.headers[name]})


def _relabelled(label: str) -> Req:
    return _edit(
        "Signature", "tadamun=", f"{label}=", _edit("Signature-Input", "tadamun=", f"{label}=")
    )


def test_profile_round_trip() -> None:
    assert GOOD.verify() == VerifiedRequest(
        keyid=SENDER, nonce=NONCE, created=CREATED, expires=CREATED + 300
    )


def test_profile_headers_are_exactly_the_profile() -> None:
    assert tuple(GOOD.headers) == SIGNED_NAMES
    assert GOOD.headers["Content-Digest"] == content_digest(PAYLOAD)
    assert GOOD.headers["Tadamun-Destination"] == RECEIVER
    assert GOOD.headers["Signature-Input"] == (
        'tadamun=("@method" "@target-uri" "content-digest" "tadamun-destination")'
        f';created={CREATED};expires={CREATED + 300};nonce="{NONCE}";keyid="{SENDER}"'
        ';alg="ed25519";tag="tadamun-fed-v1"'
    )


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://node-b.example:8443/federation/v1/keylog?since=3", b""),
        ("PUT", "http://127.0.0.1:8080/f", bytes(range(256))),
        ("DELETE", "https://[::1]/x?a=b&c=%20", b"\x00"),
    ],
)
def test_profile_round_trip_table(method: str, url: str, body: bytes) -> None:
    assert signed(method=method, url=url, body=body).verify().keyid == SENDER


def test_verification_reads_headers_case_insensitively_and_trimmed() -> None:
    headers = {k.upper(): f" {v}\t" for k, v in GOOD.headers.items()}
    replace(GOOD, headers=headers).verify()


def test_verify_accepts_extra_unsigned_headers_and_other_signatures() -> None:
    req = GOOD.header("Content-Type", "application/msgpack")
    req = req.header("Signature-Input", req.headers["Signature-Input"] + ', x=("@method")')
    req.header("Signature", req.headers["Signature"] + ", x=:AAAA:").verify()


def test_verify_ignores_fields_it_does_not_read() -> None:
    # SPEC.md §10.3: "given twice" and the ASCII rule apply to the fields the verifier reads.
    headers = dict(GOOD.headers) | {"X-Note": "caf\u00e9", "Accept": "a", "accept": "b"}
    replace(GOOD, headers=headers).verify()


def test_other_signature_members_must_fit_the_subset() -> None:
    # SPEC.md §10.3: every member of Signature-Input / Signature is parsed with the subset.
    for name, extra in [
        ("Signature-Input", ', x=("@method");foo="bar"'),
        ("Signature-Input", ', x=("@query-param";name="a")'),
        ("Signature", ", x=:AAA:"),
    ]:
        with pytest.raises(HttpSignatureError) as info:
            _edit(name, GOOD.headers[name], GOOD.headers[name] + extra).verify()
        assert info.value.code == MALFORMED


MD5_ONLY = "md5=:AAAAAAAAAAAAAAAAAAAAAA==:"
WITH_DATE = GOOD.header("Date", "today")

BAD_REQUESTS: list[tuple[str, Req, ErrorCode]] = [
    ("no-headers", replace(GOOD, headers={}), MISSING),
    ("missing-signature", GOOD.header("Signature", None), MISSING),
    ("missing-signature-input", GOOD.header("Signature-Input", None), MISSING),
    ("missing-content-digest", GOOD.header("Content-Digest", None), MISSING),
    ("missing-destination", GOOD.header("Tadamun-Destination", None), MISSING),
    ("repeated-signature-header", _repeated("Signature"), MALFORMED),
    ("repeated-digest-header", _repeated("Content-Digest"), MALFORMED),
    ("malformed-signature-input", GOOD.header("Signature-Input", "tadamun=(garbage"), MALFORMED),
    ("malformed-signature", GOOD.header("Signature", "tadamun=:%%%:"), MALFORMED),
    ("non-canonical-base64", _edit("Signature", "==:", "=:"), MALFORMED),
    ("other-label", _relabelled("other"), MALFORMED),
    ("label-only-in-input", _edit("Signature", "tadamun=", "other="), MALFORMED),
    ("duplicate-component", _edit("Signature-Input", "(", '("@method" '), MALFORMED),
    ("component-parameter", _edit("Signature-Input", '"@method"', '"@method";req'), MALFORMED),
    ("extra-component", resigned(WITH_DATE, (*PROFILE_COMPONENTS, "date")), MALFORMED),
    ("fewer-components", resigned(GOOD, PROFILE_COMPONENTS[:3]), MALFORMED),
    ("reordered-components", resigned(GOOD, PROFILE_COMPONENTS[::-1]), MALFORMED),
    ("missing-created", resigned(GOOD, drop=("created",)), MALFORMED),
    ("missing-expires", resigned(GOOD, drop=("expires",)), MALFORMED),
    ("missing-nonce", resigned(GOOD, drop=("nonce",)), MALFORMED),
    ("missing-keyid", resigned(GOOD, drop=("keyid",)), MALFORMED),
    ("missing-alg", resigned(GOOD, drop=("alg",)), MALFORMED),
    ("missing-tag", resigned(GOOD, drop=("tag",)), MALFORMED),
    ("unknown-parameter", _edit("Signature-Input", ";alg=", ';foo="x";alg='), MALFORMED),
    ("wrong-tag", resigned(GOOD, tag="tadamun-fed-v2"), MALFORMED),
    ("wrong-alg", resigned(GOOD, alg="rsa-pss-sha512"), MALFORMED),
    ("keyid-not-node-id", resigned(GOOD, keyid=SENDER.upper()), MALFORMED),
    ("validity-too-long", signed(expires=CREATED + 301), MALFORMED),
    ("expires-equals-created", resigned(GOOD, expires=CREATED), MALFORMED),
    ("expires-before-created", resigned(GOOD, expires=CREATED - 1), MALFORMED),
    ("from-future", replace(GOOD, now=CREATED - 61), FROM_FUTURE),
    ("expired", replace(GOOD, now=CREATED + 361), EXPIRED),
    ("nonce-too-short", resigned(GOOD, nonce="a" * 15), MALFORMED),
    ("nonce-too-long", resigned(GOOD, nonce="a" * 65), MALFORMED),
    ("nonce-bad-character", resigned(GOOD, nonce="0123456789abcdef."), MALFORMED),
    ("wrong-destination", replace(GOOD, own=STRANGER), WRONG_TARGET),
    ("signed-for-other-destination", signed(destination=STRANGER), WRONG_TARGET),
    ("tampered-body", replace(GOOD, body=PAYLOAD + b"!"), BAD_DIGEST),
    ("empty-body", replace(GOOD, body=b""), BAD_DIGEST),
    (
        "digest-unknown-algorithm-only",
        resigned(GOOD.header("Content-Digest", MD5_ONLY)),
        BAD_DIGEST,
    ),
    ("digest-unparseable", resigned(GOOD.header("Content-Digest", "sha-256")), BAD_DIGEST),
    ("unknown-keyid", signed(keyid=STRANGER), UNKNOWN_KEY),
    ("tampered-method", replace(GOOD, method="PUT"), BAD_SIGNATURE),
    ("other-url", replace(GOOD, url=URL + "/other"), BAD_SIGNATURE),
    ("other-scheme", replace(GOOD, url=URL.replace("https:", "http:")), BAD_SIGNATURE),
    ("other-key", signed(key=OTHER_KEY), BAD_SIGNATURE),
    ("flipped-signature-bit", _flip_signature_bit(GOOD), BAD_SIGNATURE),
    ("short-signature", GOOD.header("Signature", "tadamun=:AAAA:"), BAD_SIGNATURE),
    ("nonce-changed-after-signing", _edit("Signature-Input", NONCE, NONCE[::-1]), BAD_SIGNATURE),
]


@pytest.mark.parametrize(
    ("req", "code"), [pytest.param(req, code, id=name) for name, req, code in BAD_REQUESTS]
)
def test_profile_rejections(req: Req, code: ErrorCode) -> None:
    with pytest.raises(HttpSignatureError) as info:
        req.verify()
    assert info.value.code == code


USERINFO_URL = URL.replace("https://", "https://relay@")

CHECK_ORDER: list[tuple[str, Req, ErrorCode]] = [
    ("tag-before-expiry", replace(resigned(GOOD, tag="x"), now=CREATED + 999), MALFORMED),
    ("expired-before-target", replace(signed(destination=STRANGER), now=CREATED + 400), EXPIRED),
    ("future-before-nonce", replace(resigned(GOOD, nonce="short"), now=CREATED - 61), FROM_FUTURE),
    ("target-before-digest", replace(signed(destination=STRANGER), body=b""), WRONG_TARGET),
    ("digest-before-key", replace(signed(keyid=STRANGER), body=b""), BAD_DIGEST),
    ("key-before-signature", replace(signed(keyid=STRANGER), method="PUT"), UNKNOWN_KEY),
    # Step 1 reads Content-Digest and Tadamun-Destination, checks both are present, then does
    # the same for Signature-Input and Signature: a repeated or non-ASCII field is
    # httpsig_malformed when it is read.
    (
        "repeated-digest-before-missing-signature",
        _repeated("Content-Digest").header("Signature", None),
        MALFORMED,
    ),
    (
        "missing-digest-before-repeated-signature",
        _repeated("Signature").header("Content-Digest", None),
        MISSING,
    ),
    (
        "non-ascii-destination-at-step-1",
        replace(GOOD.header("Tadamun-Destination", RECEIVER + "\u00e9"), now=CREATED + 999),
        MALFORMED,
    ),
    # Building the signature base (step 13) is where the method and target URI are checked.
    ("key-before-target-uri", replace(signed(keyid=STRANGER), url=USERINFO_URL), UNKNOWN_KEY),
    ("digest-before-target-uri", replace(GOOD, url=USERINFO_URL, body=b""), BAD_DIGEST),
    ("target-uri-at-step-13", replace(GOOD, url=USERINFO_URL), MALFORMED),
    ("method-at-step-13", replace(GOOD, method="P OST"), MALFORMED),
    ("key-before-method", replace(signed(keyid=STRANGER), method="P OST"), UNKNOWN_KEY),
]


@pytest.mark.parametrize(
    ("req", "code"), [pytest.param(req, code, id=name) for name, req, code in CHECK_ORDER]
)
def test_profile_check_order(req: Req, code: ErrorCode) -> None:
    with pytest.raises(HttpSignatureError) as info:
        req.verify()
    assert info.value.code == code


@pytest.mark.parametrize(
    ("now", "ok"),
    [(CREATED - 60, True), (CREATED - 61, False), (CREATED + 360, True), (CREATED + 361, False)],
)
def test_profile_freshness_boundaries(now: int, ok: bool) -> None:
    if ok:
        replace(GOOD, now=now).verify()
    else:
        with pytest.raises(HttpSignatureError):
            replace(GOOD, now=now).verify()


def test_nonce_length_boundaries_are_accepted() -> None:
    for nonce in ("a" * 16, "Z" * 64, "A-z_0123456789-_"):
        assert signed(nonce=nonce).verify().nonce == nonce


@pytest.mark.parametrize(
    "changes",
    [
        {"keyid": SENDER.upper()},
        {"keyid": SENDER[:-1]},
        {"destination": "node-b.example"},
        {"nonce": "short"},
        {"nonce": "0123456789abcdef!"},
        {"created": CREATED, "expires": CREATED},
        {"created": -1, "expires": 10},
    ],
)
def test_sign_request_refuses_bad_inputs(changes: dict[str, Any]) -> None:
    with pytest.raises(HttpSignatureError) as info:
        signed(**changes)
    assert info.value.code == MALFORMED


def test_sign_request_merges_extra_headers_without_mutating_them() -> None:
    extra = {"Content-Type": "application/msgpack", "User-Agent": "tadamun"}
    snapshot = dict(extra)
    headers = sign_request(
        method="POST", url=URL, body=PAYLOAD, key=KEY, keyid=SENDER, destination=RECEIVER,
        created=CREATED, expires=CREATED + 300, nonce=NONCE, extra_headers=extra,
    )  # fmt: skip
    assert extra == snapshot
    assert headers == extra | dict(GOOD.headers)
    replace(GOOD, headers=headers).verify()


def test_sign_request_refuses_extra_headers_it_would_overwrite() -> None:
    with pytest.raises(HttpSignatureError) as info:
        sign_request(
            method="POST", url=URL, body=PAYLOAD, key=KEY, keyid=SENDER, destination=RECEIVER,
            created=CREATED, expires=CREATED + 300, nonce=NONCE,
            extra_headers={"signature": "x"},
        )  # fmt: skip
    assert info.value.code == MALFORMED


def test_signing_is_deterministic() -> None:
    assert signed().headers == GOOD.headers


def test_verification_does_not_mutate_headers() -> None:
    headers = dict(GOOD.headers)
    replace(GOOD, headers=headers).verify()
    assert headers == GOOD.headers
    replace(GOOD, headers=MappingProxyType(headers)).verify()  # a read-only mapping is enough
    bad = headers | {"Signature": "tadamun=:AAAA:"}
    with pytest.raises(HttpSignatureError):
        replace(GOOD, headers=bad).verify()
    assert bad == headers | {"Signature": "tadamun=:AAAA:"}


# --- Tamper detection properties ---------------------------------------------------------------

CHANGES = st.one_of(st.sampled_from(string.printable), st.characters())


@given(body=st.binary(min_size=1, max_size=300), data=st.data())
def test_any_body_bit_flip_is_rejected(body: bytes, data: st.DataObject) -> None:
    req = signed(body=body)
    req.verify()
    bit = data.draw(st.integers(min_value=0, max_value=len(body) * 8 - 1))
    flipped = bytearray(body)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(HttpSignatureError) as info:
        replace(req, body=bytes(flipped)).verify()
    assert info.value.code == BAD_DIGEST


@pytest.mark.parametrize("name", ["Signature", "Signature-Input"])
@given(data=st.data())
def test_any_single_character_change_in_signature_headers_is_rejected(
    name: str, data: st.DataObject
) -> None:
    value = GOOD.headers[name]
    index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
    char = data.draw(CHANGES.filter(lambda c: c != value[index]))
    changed = value[:index] + char + value[index + 1 :]
    with pytest.raises(HttpSignatureError):
        GOOD.header(name, changed).verify()


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.text(alphabet=string.ascii_letters + string.digits + "/-._~%", max_size=40),
    body=st.binary(max_size=300),
    nonce=st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=16, max_size=64),
)
def test_sign_then_verify_round_trips(method: str, path: str, body: bytes, nonce: str) -> None:
    url = f"https://node-b.example/{path}"
    assert signed(method=method, url=url, body=body, nonce=nonce).verify().nonce == nonce


# --- Known-answer vectors (tests/vectors/http_signatures.json) ---------------------------------

CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
CASE_FIELDS = frozenset(
    {"name", "kind", "label", "valid", "note", "seed_hex", "public_key_hex", "keyid", "request",
     "now", "own_node_id", "signing_input_hex", "signature_hex", "sign", "error"}
)  # fmt: skip
HTTPSIG_CODES = frozenset(code for code in ErrorCode if code.startswith("httpsig_")) - {
    "httpsig_replayed"  # node-level (SPEC.md §10.8): no pure vector can show it
}


def _field(headers: list[list[str]], name: str) -> str:
    """The one header entry called ``name`` (any case), trimmed as SPEC.md §10.4 says."""
    (value,) = [v for k, v in headers if k.lower() == name.lower()]
    return value.strip(" \t")


def _vector_verify(case: dict[str, Any], headers: dict[str, str]) -> None:
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(case["public_key_hex"]))
    request = case["request"]
    body = bytes.fromhex(request["body_hex"])

    def resolve(keyid: str) -> Ed25519PublicKey | None:
        return public if keyid == case["keyid"] else None

    if case["kind"] == "rfc9421":
        check_content_digest(headers["Content-Digest"], body)
        verify_http_signature(
            method=request["method"], url=request["url"], headers=headers,
            resolve_key=resolve, label=case["label"],
        )  # fmt: skip
        return
    verify_request(
        method=request["method"], url=request["url"], headers=headers, body=body,
        now=case["now"], own_node_id=case["own_node_id"], resolve_key=resolve,
    )  # fmt: skip


def _vector_resign(case: dict[str, Any], key: Ed25519PrivateKey) -> list[tuple[str, str]]:
    request, inputs = case["request"], case["sign"]
    extra = {k: v for k, v in request["headers"] if k not in SIGNED_NAMES}
    body = bytes.fromhex(request["body_hex"])
    signed_headers = sign_request(
        method=request["method"], url=request["url"], body=body, key=key, extra_headers=extra,
        **inputs,
    )  # fmt: skip
    return list(signed_headers.items())


def test_vectors_are_what_the_generator_makes_now() -> None:
    generator = VECTORS.with_name("gen_httpsig.py")
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(generator), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_vectors_cover_every_profile_error_code() -> None:
    assert len(CASES) >= 13
    codes = {case["error"] for case in CASES if not case["valid"]}
    assert codes == {
        MISSING, MALFORMED, BAD_DIGEST, BAD_SIGNATURE, EXPIRED, FROM_FUTURE, WRONG_TARGET,
        UNKNOWN_KEY,
    }  # fmt: skip
    assert sum(case["valid"] and case["kind"] == "tadamun-profile" for case in CASES) >= 2


def test_vector_cases_are_well_formed() -> None:
    names = [case["name"] for case in CASES]
    assert len(set(names)) == len(names)
    assert CASES[0]["kind"] == "rfc9421"
    for case in CASES:
        assert set(case) <= CASE_FIELDS, case["name"]
        assert case["kind"] in {"rfc9421", "tadamun-profile"}
        assert isinstance(case.get("note", ""), str)
        headers = case["request"]["headers"]
        assert all(len(pair) == 2 for pair in headers)
        # Entries differing only in case stay apart in a dict; exact repeats would not.
        assert len(dict(headers)) == len(headers), case["name"]
        if case["valid"]:
            assert "error" not in case
            assert {"signing_input_hex", "signature_hex"} <= set(case)
        else:
            assert case["error"] in HTTPSIG_CODES, case["name"]
            assert not {"signing_input_hex", "signature_hex", "sign"} & set(case)


def test_vectors_cover_the_strictness_rules() -> None:
    by_name = {case["name"]: case for case in CASES}
    expected = {
        "valid-parameters-leading-zeros": None,
        "valid-parameters-reordered": None,
        "valid-signature-input-spaces": None,
        "valid-surrounding-whitespace": None,
        "valid-second-signature": None,
        "valid-repeated-unread-header": None,
        "valid-digest-sha256-and-sha512": None,
        "signature-base64-unpadded": MALFORMED,
        "signature-base64-nonzero-pad-bits": MALFORMED,
        "signature-input-duplicate-parameter": MALFORMED,
        "signature-input-unknown-parameter": MALFORMED,
        "signature-input-token-parameter": MALFORMED,
        "signature-input-boolean-parameter": MALFORMED,
        "signature-input-parameter-without-value": MALFORMED,
        "second-signature-unknown-parameter": MALFORMED,
        "content-digest-given-twice": MALFORMED,
        "destination-given-twice": MALFORMED,
        "destination-not-ascii": MALFORMED,
        "digest-sha512-wrong-beside-sha256": BAD_DIGEST,
        "target-uri-userinfo": MALFORMED,
        "target-uri-fragment": MALFORMED,
        "target-uri-not-http": MALFORMED,
    }
    assert {name: by_name[name].get("error") for name in expected} == expected


def test_vector_example_body_is_canonical_msgpack() -> None:
    # SPEC.md §10.1 shows valid-post; its body must itself be canonical (§3.4: sorted keys).
    (post,) = [case for case in CASES if case["name"] == "valid-post"]
    body = bytes.fromhex(post["request"]["body_hex"])
    assert decode(body) == {"id": 1337, "type": "ping"}
    assert encode(decode(body)) == body


def test_vectors_with_equivalent_text_share_valid_posts_signature() -> None:
    # Leading zeros, spaces, surrounding whitespace and a second signature change the field
    # text but not the parsed parameters, so the signature base and signature are valid-post's.
    by_name = {case["name"]: case for case in CASES}
    post = by_name["valid-post"]
    for name in (
        "valid-parameters-leading-zeros", "valid-signature-input-spaces",
        "valid-surrounding-whitespace", "valid-second-signature", "valid-repeated-unread-header",
    ):  # fmt: skip
        case = by_name[name]
        assert case["signing_input_hex"] == post["signing_input_hex"], name
        assert case["signature_hex"] == post["signature_hex"], name
        assert case["request"]["headers"] != post["request"]["headers"], name


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_known_answer_vector(case: dict[str, Any]) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["seed_hex"]))
    assert key.public_key().public_bytes_raw().hex() == case["public_key_hex"]
    headers = dict(case["request"]["headers"])
    assert len(headers) == len(case["request"]["headers"])
    if not case["valid"]:
        with pytest.raises(HttpSignatureError) as info:
            _vector_verify(case, headers)
        assert info.value.code == case["error"]
        return
    _vector_verify(case, headers)
    label = case.get("label", "tadamun")
    request = case["request"]
    params = parse_signature_input(_field(request["headers"], "Signature-Input"))[label]
    base = signature_base(
        method=request["method"], url=request["url"], headers=headers, params=params
    )
    assert base.hex() == case["signing_input_hex"]
    assert key.sign(base).hex() == case["signature_hex"]
    signature = parse_signature(_field(request["headers"], "Signature"))[label]
    assert signature.hex() == case["signature_hex"]
    if "sign" in case:
        assert _vector_resign(case, key) == [tuple(pair) for pair in request["headers"]]
