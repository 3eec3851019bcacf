"""Write ``tests/vectors/http_signatures.json``: known-answer vectors for SPEC.md §10.

Run ``python tests/vectors/gen_httpsig.py`` to rewrite the JSON file, or with ``--check`` to
fail if the committed file differs from what the implementation produces now. Ed25519 is
deterministic and every input is fixed, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from protocol.httpsig import (
    ALG,
    PROFILE_COMPONENTS,
    PROFILE_LABEL,
    PROFILE_TAG,
    SignatureParams,
    parse_signature_input,
    sign_request,
    signature_base,
)

OUT = Path(__file__).with_name("http_signatures.json")

SEED = bytes(range(32))
SENDER = hashlib.sha256(b"tadamun vector sender").hexdigest()
RECEIVER = hashlib.sha256(b"tadamun vector receiver").hexdigest()
STRANGER = hashlib.sha256(b"tadamun vector stranger").hexdigest()
CREATED = 1_700_000_000
NONCE = "vector-nonce-0001_AbCdEf"

# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.2 (test-request), B.2.6 (sig-b26).
RFC_PRIVATE_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    b"-----END PRIVATE KEY-----\n"
)
RFC_PUBLIC_SPKI_B64 = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="
RFC_SIGNATURE_B64 = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)
RFC_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_BODY = b'{"hello": "world"}'
RFC_HEADERS = (
    ("Host", "example.com"),
    ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("Content-Type", "application/json"),
    (
        "Content-Digest",
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+"
        "AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    ),
    ("Content-Length", "18"),
    ("Signature-Input", RFC_SIGNATURE_INPUT),
    ("Signature", f"sig-b26=:{RFC_SIGNATURE_B64}:"),
)

DESCRIPTION = (
    "Known-answer vectors for Tadamun transport signatures (SPEC.md §10): RFC 9421 HTTP Message "
    "Signatures with alg ed25519 and RFC 9530 Content-Digest. Each case: 'name'; 'kind' "
    "('rfc9421' = generic verification of the signature named by 'label', 'tadamun-profile' = "
    "the full profile check of §10.6); 'valid'; 'seed_hex' (32-byte Ed25519 seed) and "
    "'public_key_hex' (raw 32 bytes) of the signer; 'keyid': the verifier's key resolver maps "
    "exactly this keyid to public_key_hex and knows no other; 'request' {method, url (the full "
    "target URI), headers (list of [name, value]), body_hex}; for profile cases 'now' (unix "
    "seconds, max_skew 60, max_validity 300) and 'own_node_id'. Valid cases give "
    "'signing_input_hex' (the exact signature base) and 'signature_hex'; cases made by the "
    "profile signer also give 'sign' (its inputs), and signing must reproduce the request's "
    "headers exactly. Invalid cases give 'error', the code verification must raise. All hex is "
    "lower-case."
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    sign: dict[str, str | int] = field(default_factory=dict)

    def with_header(self, name: str, value: str | None) -> Request:
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=kept if value is None else (*kept, (name, value)))

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())


def _key(seed: bytes = SEED) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _signed(
    method: str,
    url: str,
    body: bytes,
    *,
    keyid: str = SENDER,
    destination: str = RECEIVER,
    created: int = CREATED,
    expires: int = CREATED + 300,
    nonce: str = NONCE,
) -> Request:
    """A request signed by the profile signer, as a node would send it."""
    key = _key()
    headers = sign_request(
        method=method, url=url, body=body, key=key, keyid=keyid, destination=destination,
        created=created, expires=expires, nonce=nonce,
        extra_headers={"Content-Type": "application/msgpack"},
    )  # fmt: skip
    inputs: dict[str, str | int] = {"keyid": keyid, "destination": destination}
    inputs |= {"created": created, "expires": expires, "nonce": nonce}
    return Request(method, url, body, tuple(headers.items()), inputs)


def _resigned(req: Request, params: SignatureParams) -> Request:
    """``req`` signed again, with hand-made parameters, over its current headers."""
    base = signature_base(method=req.method, url=req.url, headers=dict(req.headers), params=params)
    signature = base64.b64encode(_key().sign(base)).decode("ascii")
    req = req.with_header("Signature-Input", f"{PROFILE_LABEL}={params.serialize()}")
    return replace(req.with_header("Signature", f"{PROFILE_LABEL}=:{signature}:"), sign={})


def _params(**changes: int | str) -> SignatureParams:
    params: dict[str, int | str] = {
        "created": CREATED, "expires": CREATED + 300, "nonce": NONCE,
        "keyid": SENDER, "alg": ALG, "tag": PROFILE_TAG,
    }  # fmt: skip
    params.update(changes)
    return SignatureParams(PROFILE_COMPONENTS, tuple(params.items()))


def _request_json(req: Request) -> dict[str, Any]:
    headers = [[k, v] for k, v in req.headers]
    return {"method": req.method, "url": req.url, "headers": headers, "body_hex": req.body.hex()}


def _case(
    name: str, req: Request, *, now: int = CREATED + 10, error: str | None = None
) -> dict[str, Any]:
    case: dict[str, Any] = {"name": name, "kind": "tadamun-profile", "valid": error is None}
    case |= {"seed_hex": SEED.hex(), "public_key_hex": _raw_public(_key()), "keyid": SENDER}
    case |= {"request": _request_json(req), "now": now, "own_node_id": RECEIVER}
    if error is not None:
        return case | {"error": error}
    label = parse_signature_input(req.header("Signature-Input"))[PROFILE_LABEL]
    base = signature_base(method=req.method, url=req.url, headers=dict(req.headers), params=label)
    case |= {"signing_input_hex": base.hex(), "signature_hex": _key().sign(base).hex()}
    return case | ({"sign": req.sign} if req.sign else {})


def rfc_case() -> dict[str, Any]:
    key = load_pem_private_key(RFC_PRIVATE_PEM, None)
    assert isinstance(key, Ed25519PrivateKey)
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64encode(spki).decode() == RFC_PUBLIC_SPKI_B64
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    url = "https://example.com/foo?param=Value&Pet=dog"
    params = parse_signature_input(RFC_SIGNATURE_INPUT)["sig-b26"]
    base = signature_base(method="POST", url=url, headers=dict(RFC_HEADERS), params=params)
    signature = key.sign(base)
    assert base64.b64encode(signature).decode() == RFC_SIGNATURE_B64, "RFC 9421 B.2.6 mismatch"
    return {
        "name": "rfc9421-b26-ed25519",
        "kind": "rfc9421",
        "label": "sig-b26",
        "valid": True,
        "seed_hex": seed.hex(),
        "public_key_hex": _raw_public(key),
        "keyid": "test-key-ed25519",
        "request": _request_json(Request("POST", url, RFC_BODY, RFC_HEADERS)),
        "signing_input_hex": base.hex(),
        "signature_hex": signature.hex(),
    }


def _invalid_cases(post: Request) -> list[tuple[str, Request, int, str]]:
    """Each case breaks exactly one rule of SPEC.md §10.6; ``now`` defaults to created + 10."""
    url, body, now = post.url, post.body, CREATED + 10
    signature_input = post.header("Signature-Input")
    sig = bytearray(base64.b64decode(post.header("Signature").split(":")[1]))
    sig[0] ^= 1
    bad_sig = f"{PROFILE_LABEL}=:{base64.b64encode(sig).decode()}:"
    md5_only = post.with_header("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")
    return [
        ("tampered-body", replace(post, body=body + b"\x00"), now, "httpsig_bad_digest"),
        ("tampered-method", replace(post, method="PUT"), now, "httpsig_bad_signature"),
        ("other-url", replace(post, url=url + "2"), now, "httpsig_bad_signature"),
        ("wrong-destination", _signed("POST", url, body, destination=STRANGER), now,
         "httpsig_wrong_target"),
        ("missing-signature", post.with_header("Signature", None), now, "httpsig_missing"),
        ("missing-content-digest", post.with_header("Content-Digest", None), now,
         "httpsig_missing"),
        ("malformed-signature-input",
         post.with_header("Signature-Input", signature_input.replace(")", "", 1)), now,
         "httpsig_malformed"),
        ("duplicate-component",
         post.with_header("Signature-Input", signature_input.replace("(", '("@method" ', 1)),
         now, "httpsig_malformed"),
        ("extra-component",
         post.with_header("Signature-Input", signature_input.replace(")", ' "content-type")')),
         now, "httpsig_malformed"),
        ("unknown-keyid", _signed("POST", url, body, keyid=STRANGER), now, "httpsig_unknown_key"),
        ("wrong-alg", _resigned(post, _params(alg="rsa-pss-sha512")), now, "httpsig_malformed"),
        ("wrong-tag", _resigned(post, _params(tag="tadamun-fed-v2")), now, "httpsig_malformed"),
        ("expired", post, CREATED + 300 + 61, "httpsig_expired"),
        ("from-future", post, CREATED - 61, "httpsig_from_future"),
        ("validity-too-long", _signed("POST", url, body, expires=CREATED + 301), now,
         "httpsig_malformed"),
        ("bad-nonce", _resigned(post, _params(nonce="too-short")), now, "httpsig_malformed"),
        ("digest-unknown-algorithm-only", _resigned(md5_only, _params()), now,
         "httpsig_bad_digest"),
        ("bad-signature-bytes", post.with_header("Signature", bad_sig), now,
         "httpsig_bad_signature"),
    ]  # fmt: skip


def profile_cases() -> list[dict[str, Any]]:
    body = bytes.fromhex("82a474797065a470696e67a26964cd0539")  # msgpack {"type":"ping","id":1337}
    url = "https://node-b.example/federation/v1/inbox"
    post = _signed("POST", url, body)
    get_url = "https://node-b.example:8443/federation/v1/keylog?since=3&limit=50"
    edge = _signed("PUT", url, b"", nonce="Z" * 64)
    sha512 = base64.b64encode(hashlib.sha512(body).digest()).decode()
    sha512_only = post.with_header("Content-Digest", f"sha-512=:{sha512}:")
    valid = [
        _case("valid-post", post),
        _case("valid-get-empty-body", _signed("GET", get_url, b"")),
        _case("valid-at-expiry-plus-skew", edge, now=CREATED + 300 + 60),
        _case("valid-created-at-skew-limit", post, now=CREATED - 60),
        _case("valid-sha512-digest", _resigned(sha512_only, _params())),
    ]
    invalid = [
        _case(name, req, now=now, error=error) for name, req, now, error in _invalid_cases(post)
    ]
    return valid + invalid


def render() -> str:
    vectors = {"description": DESCRIPTION, "cases": [rfc_case(), *profile_cases()]}
    return json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    text = render()
    if not parser.parse_args().check:
        OUT.write_text(text, encoding="utf-8")
        return 0
    if OUT.exists() and OUT.read_text(encoding="utf-8") == text:
        return 0
    print(f"stale vectors: {OUT.name}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
