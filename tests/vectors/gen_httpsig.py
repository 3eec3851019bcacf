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
import string
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
# Canonical MessagePack (SPEC.md §3.4, keys sorted bytewise) of {"id": 1337, "type": "ping"}.
BODY = bytes.fromhex("82a26964cd0539a474797065a470696e67")
URL = "https://node-b.example/federation/v1/inbox"
PROXY_SEED = hashlib.sha256(b"tadamun vector proxy").digest()
PROXY_KEYID = "proxy-key-1"
PROXY_COMPONENTS = ("@method", "@authority", "content-digest")

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
    "the full profile check of §10.6, steps 1-13); 'valid'; optional 'note' (free text for "
    "humans, no effect on the result); 'seed_hex' (32-byte Ed25519 seed) and 'public_key_hex' "
    "(raw 32 bytes) of the signer; 'keyid': the verifier's key resolver maps exactly this keyid "
    "to public_key_hex and knows no other; 'request' {method, url, headers, body_hex}: 'url' is "
    "the full target URI the receiver uses for @target-uri (its own public base URL plus the "
    "path and query as received), 'headers' is the header map the receiver sees, a list of "
    "[name, value] with one entry per field line: names compare case-insensitively, two entries "
    "with one name are not combined (a field the verifier reads that appears twice is "
    "httpsig_malformed), and values may carry leading and trailing SP/HTAB, which are trimmed; "
    "for profile cases 'now' (unix seconds, max_skew 60, max_validity 300) and 'own_node_id'. "
    "Valid cases give 'signing_input_hex' (the exact signature base of the profile's 'tadamun' "
    "signature, or of 'label') and 'signature_hex'; cases made by the profile signer also give "
    "'sign' (its inputs), and signing must reproduce the request's headers exactly. Invalid "
    "cases give 'error', the one code verification must raise. All hex is lower-case."
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    sign: dict[str, str | int] = field(default_factory=dict)
    note: str = ""

    def with_header(self, name: str, value: str | None) -> Request:
        """A copy with header ``name`` set in place (appended if absent), or removed if None."""
        same = [i for i, (k, _) in enumerate(self.headers) if k.lower() == name.lower()]
        if value is None or not same:
            kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
            return replace(self, headers=kept if value is None else (*kept, (name, value)))
        headers = [(k, v) for i, (k, v) in enumerate(self.headers) if i not in same[1:]]
        headers[same[0]] = (self.headers[same[0]][0], value)
        return replace(self, headers=tuple(headers))

    def adding(self, name: str, value: str) -> Request:
        """A copy with one more header entry; an entry of the same name is kept, not merged."""
        return replace(self, headers=(*self.headers, (name, value)), sign={})

    def edited(self, name: str, old: str, new: str) -> Request:
        """A copy with the first ``old`` in header ``name`` replaced by ``new``."""
        value = self.header(name)
        assert old in value, (name, old)
        return replace(self.with_header(name, value.replace(old, new, 1)), sign={})

    def noted(self, note: str) -> Request:
        return replace(self, note=note)

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


def _text_signed(req: Request, *, inner: str | None = None, url: str | None = None) -> Request:
    """``req`` signed over the base a verifier without the §10.3/§10.4 checks would build.

    ``inner`` becomes the ``tadamun`` member of Signature-Input and is copied into the
    ``@signature-params`` line as it is; ``url`` becomes the request's URI and its
    ``@target-uri`` line verbatim. Only the rule under test can then reject the request.
    """
    params = parse_signature_input(req.header("Signature-Input"))[PROFILE_LABEL]
    base = signature_base(method=req.method, url=req.url, headers=dict(req.headers), params=params)
    lines = base.decode("ascii").split("\n")
    assert lines[1].startswith('"@target-uri": '), lines
    assert lines[-1].startswith('"@signature-params": '), lines
    if url is not None:
        lines[1] = f'"@target-uri": {url}'
        req = replace(req, url=url)
    if inner is not None:
        lines[-1] = f'"@signature-params": {inner}'
        req = req.with_header("Signature-Input", f"{PROFILE_LABEL}={inner}")
    signature = base64.b64encode(_key().sign("\n".join(lines).encode("ascii"))).decode("ascii")
    return replace(req.with_header("Signature", f"{PROFILE_LABEL}=:{signature}:"), sign={})


def _cosigned(req: Request, extra: str = "") -> Request:
    """``req`` with a second signature, label ``proxy``, by another key over other components.

    Its member comes first in Signature-Input and last in Signature; ``extra`` is appended to
    its parameters (and to what it signs), to put it outside the subset of §10.3.
    """
    params = SignatureParams(
        PROXY_COMPONENTS, (("created", CREATED + 1), ("keyid", PROXY_KEYID), ("alg", ALG))
    )
    base = signature_base(method=req.method, url=req.url, headers=dict(req.headers), params=params)
    inner = params.serialize() + extra
    base = base.rsplit(b"\n", 1)[0] + f'\n"@signature-params": {inner}'.encode("ascii")
    signature = base64.b64encode(_key(PROXY_SEED).sign(base)).decode("ascii")
    req = req.with_header("Signature-Input", f"proxy={inner}, {req.header('Signature-Input')}")
    req = req.with_header("Signature", f"{req.header('Signature')}, proxy=:{signature}:")
    return replace(req, sign={})


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
    case |= {"note": req.note} if req.note else {}
    case |= {"seed_hex": SEED.hex(), "public_key_hex": _raw_public(_key()), "keyid": SENDER}
    case |= {"request": _request_json(req), "now": now, "own_node_id": RECEIVER}
    if error is not None:
        return case | {"error": error}
    inputs = parse_signature_input(req.header("Signature-Input").strip(" \t"))
    params = inputs[PROFILE_LABEL]
    base = signature_base(method=req.method, url=req.url, headers=dict(req.headers), params=params)
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signature_text(req: Request) -> str:
    return req.header("Signature").removeprefix(f"{PROFILE_LABEL}=:").removesuffix(":")


def _parser_cases(post: Request) -> list[tuple[str, Request, int, str]]:
    """SPEC.md §10.3: text RFC 8941 (or a verifier copying the field text) would accept."""
    now, inner = CREATED + 10, post.header("Signature-Input").removeprefix(f"{PROFILE_LABEL}=")
    sig = _signature_text(post)
    assert sig.endswith("==")  # 64 bytes: the last character before "==" has 4 pad bits
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    pad_bits = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + "=="
    assert base64.b64decode(pad_bits) == base64.b64decode(sig)
    same_bytes = "same 64 signature bytes as valid-post, which a lenient base64 decoder accepts"
    as_text = "signed over @signature-params copied from the field text, so only §10.3 rejects it"
    alg = f';alg="{ALG}"'
    return [
        ("signature-base64-unpadded",
         post.with_header("Signature", f"{PROFILE_LABEL}=:{sig.rstrip('=')}:")
         .noted(f"base64 without its '=' padding; {same_bytes}"), now, "httpsig_malformed"),
        ("signature-base64-nonzero-pad-bits",
         post.with_header("Signature", f"{PROFILE_LABEL}=:{pad_bits}:")
         .noted(f"the unused low bits of the last base64 character are not zero; {same_bytes}"),
         now, "httpsig_malformed"),
        ("signature-input-duplicate-parameter",
         _text_signed(post, inner=f"{inner};created={CREATED}")
         .noted(f"created given twice, with the same value; {as_text}"), now,
         "httpsig_malformed"),
        ("signature-input-unknown-parameter",
         _text_signed(post, inner=f'{inner};context="federation"')
         .noted(f"a seventh parameter, context; {as_text}"), now, "httpsig_malformed"),
        ("signature-input-token-parameter",
         _text_signed(post, inner=inner.replace(alg, f";alg={ALG}"))
         .noted(f"alg given as a token, not a string; {as_text}"), now, "httpsig_malformed"),
        ("signature-input-boolean-parameter",
         _text_signed(post, inner=inner.replace(alg, ";alg=?1"))
         .noted(f"alg given as the boolean ?1; {as_text}"), now, "httpsig_malformed"),
        ("signature-input-parameter-without-value",
         _text_signed(post, inner=inner.replace(alg, ";alg"))
         .noted(f"alg without a value (boolean true in RFC 8941); {as_text}"), now,
         "httpsig_malformed"),
        ("second-signature-unknown-parameter",
         _cosigned(post, extra=';context="relay"')
         .noted("the tadamun signature is valid-post's; a second member, proxy, has a parameter "
                "outside the six of §10.3, so Signature-Input does not parse (step 2)"),
         now, "httpsig_malformed"),
    ]  # fmt: skip


def _field_and_uri_cases(post: Request) -> list[tuple[str, Request, int, str]]:
    """SPEC.md §10.3-§10.4: repeated or non-ASCII fields, both digests, target-URI rules."""
    now, body = CREATED + 10, post.body
    sha256, wrong512 = _b64(hashlib.sha256(body).digest()), _b64(hashlib.sha512(b"").digest())
    both_digests = post.with_header("Content-Digest", f"sha-256=:{sha256}:, sha-512=:{wrong512}:")
    uri = (
        "'url' is the target URI the receiver uses (its own base URL plus the path and query as "
        "received); the signature is valid over a base holding it verbatim, and building the "
        "base at step 13 rejects it"
    )
    path = URL.removeprefix("https://node-b.example")
    return [
        ("content-digest-given-twice",
         post.adding("content-digest", post.header("Content-Digest"))
         .noted("two header entries for Content-Digest, equal values; not combined (step 1)"),
         now, "httpsig_malformed"),
        ("destination-given-twice",
         post.adding("tadamun-destination", RECEIVER)
         .noted("two header entries for Tadamun-Destination, equal values; not combined (step 1)"),
         now, "httpsig_malformed"),
        ("destination-not-ascii",
         post.with_header("Tadamun-Destination", f"{RECEIVER}\u00e9")
         .noted("a field the verifier reads holds a character outside %x20-7E / HTAB (step 1)"),
         now, "httpsig_malformed"),
        ("digest-sha512-wrong-beside-sha256", _resigned(both_digests, _params())
         .noted("sha-256 matches the body, sha-512 does not; both must match (§10.2)"),
         now, "httpsig_bad_digest"),
        ("target-uri-userinfo",
         _text_signed(post, url=f"https://relay@node-b.example{path}").noted(f"{uri}: userinfo"),
         now, "httpsig_malformed"),
        ("target-uri-fragment",
         _text_signed(post, url=f"{URL}#inbox").noted(f"{uri}: a fragment"), now,
         "httpsig_malformed"),
        ("target-uri-not-http",
         _text_signed(post, url=f"ftp://node-b.example{path}").noted(f"{uri}: scheme ftp"), now,
         "httpsig_malformed"),
    ]  # fmt: skip


def _invalid_cases(post: Request) -> list[tuple[str, Request, int, str]]:
    """Each case breaks exactly one rule of SPEC.md §10; ``now`` defaults to created + 10."""
    url, body, now = post.url, post.body, CREATED + 10
    signature_input = post.header("Signature-Input")
    sig = bytearray(base64.b64decode(_signature_text(post)))
    sig[0] ^= 1
    bad_sig = f"{PROFILE_LABEL}=:{_b64(bytes(sig))}:"
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
        *_parser_cases(post),
        *_field_and_uri_cases(post),
    ]  # fmt: skip


def _lenient_valid_cases(post: Request) -> list[tuple[str, Request]]:
    """Valid requests in forms other than the sender's (SPEC.md §10.3, §10.4, §10.6 notes)."""
    inner = post.header("Signature-Input").removeprefix(f"{PROFILE_LABEL}=")
    timestamps = f"created={CREATED};expires={CREATED + 300}"
    spaced = (
        inner.replace('("', '( "', 1).replace('" "', '"  "').replace('")', '" )', 1)
        .replace(";expires=", "; expires=").replace(";nonce=", ";  nonce=")
    )  # fmt: skip
    reordered = dict(_params().params)
    order = ("keyid", "alg", "tag", "nonce", "expires", "created")
    body = post.body
    sha256, sha512 = _b64(hashlib.sha256(body).digest()), _b64(hashlib.sha512(body).digest())
    both = post.with_header("Content-Digest", f"sha-256=:{sha256}:, sha-512=:{sha512}:")
    padded = replace(post, headers=tuple((k, f" \t{v}\t ") for k, v in post.headers), sign={})
    same_base = "the signature base and signature are valid-post's"
    return [
        ("valid-parameters-leading-zeros",
         post.edited("Signature-Input", timestamps,
                     f"created=000{CREATED};expires=0{CREATED + 300}")
         .noted(f"integers with leading zeros parse and are re-serialised without them: "
                f"{same_base}")),
        ("valid-parameters-reordered",
         _resigned(post, SignatureParams(PROFILE_COMPONENTS,
                                         tuple((k, reordered[k]) for k in order)))
         .noted("parameters not in the sender's order of §10.5; the base keeps the order "
                "received")),
        ("valid-signature-input-spaces",
         post.edited("Signature-Input", inner, spaced)
         .noted(f"spaces the subset allows inside the inner list and after ';': {same_base}")),
        ("valid-surrounding-whitespace",
         padded.noted(f"every header value has SP and HTAB around it, trimmed: {same_base}")),
        ("valid-second-signature",
         _cosigned(post).noted("a second signature, label proxy, by another key over other "
                               "components, listed first in Signature-Input and last in "
                               f"Signature; the profile ignores it: {same_base}")),
        ("valid-repeated-unread-header",
         post.adding("content-type", "application/msgpack")
         .noted("Content-Type twice: only the fields the verifier reads must appear once")),
        ("valid-digest-sha256-and-sha512",
         _resigned(both, _params()).noted("both digests present and both match")),
    ]  # fmt: skip


def profile_cases() -> list[dict[str, Any]]:
    post = _signed("POST", URL, BODY)
    get_url = "https://node-b.example:8443/federation/v1/keylog?since=3&limit=50"
    edge = _signed("PUT", URL, b"", nonce="Z" * 64)
    sha512 = _b64(hashlib.sha512(BODY).digest())
    sha512_only = post.with_header("Content-Digest", f"sha-512=:{sha512}:")
    valid = [
        _case("valid-post", post),
        _case("valid-get-empty-body", _signed("GET", get_url, b"")),
        _case("valid-at-expiry-plus-skew", edge, now=CREATED + 300 + 60),
        _case("valid-created-at-skew-limit", post, now=CREATED - 60),
        _case("valid-sha512-digest", _resigned(sha512_only, _params())),
        *(_case(name, req) for name, req in _lenient_valid_cases(post)),
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
