"""HTTP Message Signatures (RFC 9421, ``ed25519``) and Content-Digest (RFC 9530), SPEC.md §10.

Pure functions: strings and bytes in, values out. No clock (callers pass ``now`` as int unix
seconds), no I/O. The wire rules are written down once here and in SPEC.md §10:

* Content-Digest (§10.2): an RFC 8941 dictionary of byte sequences; ``sha-256`` and ``sha-512``
  are understood, other algorithms ignored; at least one understood member, and all must match.
* Signature-Input and Signature (§10.3) are read with a strict subset of RFC 8941: inner lists of
  strings without parameters; signature parameters ``created``, ``expires`` (integers) and
  ``nonce``, ``keyid``, ``alg``, ``tag`` (strings) only; duplicate keys, boolean members and
  non-canonical base64 are rejected.
* The signature base (§10.4) is RFC 9421 §2.5: one ``"<component>": <value>`` line per covered
  component, then ``"@signature-params": <inner list>``, joined by LF, no final LF, US-ASCII.
* The Tadamun profile (§10.5-§10.6): label ``tadamun``, components ``"@method" "@target-uri"
  "content-digest" "tadamun-destination"``, parameters created, expires, nonce, keyid, alg, tag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ErrorCode, HttpSignatureError
from .keys import SIGNATURE_SIZE
from .sfv import (
    DERIVED_COMPONENTS,
    SignatureParams,
    malformed,
    parse_byte_sequences,
    parse_signature,
    parse_signature_input,
    sf_string,
)

__all__ = [
    "ALG",
    "DESTINATION_HEADER",
    "PROFILE_COMPONENTS",
    "PROFILE_LABEL",
    "PROFILE_TAG",
    "KeyResolver",
    "SignatureParams",
    "VerifiedRequest",
    "check_content_digest",
    "content_digest",
    "parse_signature",
    "parse_signature_input",
    "sign_request",
    "signature_base",
    "verify_http_signature",
    "verify_request",
]

ALG: Final = "ed25519"
PROFILE_LABEL: Final = "tadamun"
PROFILE_TAG: Final = "tadamun-fed-v1"
PROFILE_COMPONENTS: Final = ("@method", "@target-uri", "content-digest", "tadamun-destination")
DESTINATION_HEADER: Final = "Tadamun-Destination"

KeyResolver = Callable[[str], Ed25519PublicKey | None]
"""Maps a ``keyid`` to the public key it names, or ``None`` when unknown (SPEC.md §10.7)."""

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_FIELD_VALUE = re.compile(r"[\x20-\x7e\t]*")
_URI = re.compile(r"[\x21\x22\x24-\x7e]+")  # visible ASCII without "#": no fragment
_NODE_ID = re.compile(r"[0-9a-f]{64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")

_DIGESTS: Mapping[str, str] = {"sha-256": "sha256", "sha-512": "sha512"}
_SIGNED_HEADERS = frozenset(
    {"content-digest", "tadamun-destination", "signature-input", "signature"}
)
_DEFAULT_PORTS: Mapping[str, int] = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """What a verified federation request proves; the caller still checks ``nonce`` (§10.8)."""

    keyid: str
    nonce: str
    created: int
    expires: int


def content_digest(body: bytes) -> str:
    """The Content-Digest field value a sender attaches: ``sha-256=:<base64>:`` (§10.2)."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode('ascii')}:"


def check_content_digest(header: str | None, body: bytes) -> None:
    """Check a Content-Digest value against ``body`` (SPEC.md §10.2).

    A missing header raises ``httpsig_missing``; an unparseable one, one without ``sha-256``
    or ``sha-512``, or any understood digest that does not match raises ``httpsig_bad_digest``.
    """
    if header is None:
        raise HttpSignatureError(ErrorCode.HTTPSIG_MISSING, "no Content-Digest")
    bad = ErrorCode.HTTPSIG_BAD_DIGEST
    digests = parse_byte_sequences(header, bad, "Content-Digest")
    known = {alg: value for alg, value in digests.items() if alg in _DIGESTS}
    if not known:
        raise HttpSignatureError(bad, "no sha-256 or sha-512 digest")
    for alg, value in known.items():
        if not hmac.compare_digest(hashlib.new(_DIGESTS[alg], body).digest(), value):
            raise HttpSignatureError(bad, f"{alg} digest does not match the body")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup of one field, trimmed (SPEC.md §10.4); repeats are refused."""
    found = [value for key, value in headers.items() if key.lower() == name]
    if len(found) > 1:
        raise malformed(f"field {name!r} given more than once; combine its lines first")
    if not found:
        return None
    value = found[0].strip(" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise malformed(f"field {name!r} has characters outside visible ASCII")
    return value


def _split(url: str) -> SplitResult:
    if not _URI.fullmatch(url):
        raise malformed("target URI must be visible ASCII without a fragment")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise malformed(f"bad target URI: {exc}") from exc
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        raise malformed("target URI must be http(s)://host[:port]/... without userinfo")
    if port == 0:
        raise malformed("target URI port 0")
    return parts


def _authority(parts: SplitResult) -> str:
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = parts.port
    return host if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{host}:{port}"


def _derived_values(method: str, url: str) -> dict[str, str]:
    """The derived components of RFC 9421 §2.2 that this module supports (SPEC.md §10.4)."""
    if not _TOKEN.fullmatch(method):
        raise malformed("method is not an HTTP token")
    parts = _split(url)
    path = parts.path or "/"
    return {
        "@method": method,
        "@target-uri": url,
        "@authority": _authority(parts),
        "@scheme": parts.scheme,
        "@request-target": f"{path}?{parts.query}" if parts.query else path,
        "@path": path,
        "@query": f"?{parts.query}",
    }


def signature_base(
    *, method: str, url: str, headers: Mapping[str, str], params: SignatureParams
) -> bytes:
    """The RFC 9421 §2.5 signature base of a request (SPEC.md §10.4).

    ``url`` is the full target URI; ``headers`` is looked up case-insensitively.
    A covered field that is absent raises ``httpsig_malformed``.
    """
    derived = _derived_values(method, url)
    lines = []
    for name in params.components:
        value = derived[name] if name in DERIVED_COMPONENTS else _header(headers, name)
        if value is None:
            raise malformed(f"covered field {name!r} is absent")
        lines.append(f"{sf_string(name)}: {value}")
    lines.append(f'"@signature-params": {params.serialize()}')
    return "\n".join(lines).encode("ascii")


def _select(headers: Mapping[str, str], label: str | None) -> tuple[SignatureParams, bytes]:
    inputs_text, signatures_text = (
        _header(headers, "signature-input"),
        _header(headers, "signature"),
    )
    if inputs_text is None or signatures_text is None:  # SPEC.md §10.6 step 1
        raise HttpSignatureError(ErrorCode.HTTPSIG_MISSING, "no Signature-Input or Signature")
    inputs, signatures = parse_signature_input(inputs_text), parse_signature(signatures_text)
    if label is None:
        if len(inputs) != 1:
            raise malformed("expected exactly one signature")
        label = next(iter(inputs))
    if label not in inputs or label not in signatures:  # SPEC.md §10.6 step 2
        raise malformed(f"no signature labelled {label!r}")
    return inputs[label], signatures[label]


def _resolve(resolve_key: KeyResolver, keyid: str) -> Ed25519PublicKey:
    key = resolve_key(keyid)  # SPEC.md §10.7
    if key is None:
        raise HttpSignatureError(ErrorCode.HTTPSIG_UNKNOWN_KEY, f"unknown keyid {keyid!r}")
    return key


def _check_signature(key: Ed25519PublicKey, signature: bytes, base: bytes) -> None:
    try:
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature
        key.verify(signature, base)
    except InvalidSignature as exc:
        raise HttpSignatureError(ErrorCode.HTTPSIG_BAD_SIGNATURE, "signature invalid") from exc


def verify_http_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    resolve_key: KeyResolver,
    label: str | None = None,
) -> SignatureParams:
    """Verify one RFC 9421 ``ed25519`` signature (``label``, or the only one); no profile rules.

    ``keyid`` is required; ``alg``, when present, must be ``ed25519``. Returns the verified
    signature's parameters; freshness, replay and Content-Digest are the caller's.
    """
    params, signature = _select(headers, label)
    alg, keyid = params.value("alg"), params.value("keyid")
    if alg is not None and alg != ALG:
        raise malformed(f"unsupported alg {alg!r}")
    if not isinstance(keyid, str):
        raise malformed("no keyid")
    base = signature_base(method=method, url=url, headers=headers, params=params)
    _check_signature(_resolve(resolve_key, keyid), signature, base)
    return params


def _profile_params(keyid: str, nonce: str, created: int, expires: int) -> SignatureParams:
    # SPEC.md §10.5: components and parameters in this exact order.
    params = (
        ("created", created), ("expires", expires), ("nonce", nonce),
        ("keyid", keyid), ("alg", ALG), ("tag", PROFILE_TAG),
    )  # fmt: skip
    return SignatureParams(PROFILE_COMPONENTS, params)


def sign_request(
    *,
    method: str,
    url: str,
    body: bytes,
    key: Ed25519PrivateKey,
    keyid: str,
    destination: str,
    created: int,
    expires: int,
    nonce: str,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Sign a federation request (SPEC.md §10.5); returns a new dict of headers to send.

    The result holds ``extra_headers`` (copied, not covered by the signature) plus
    Content-Digest, Tadamun-Destination, Signature-Input and Signature.
    """
    if not (_NODE_ID.fullmatch(keyid) and _NODE_ID.fullmatch(destination)):
        raise malformed("keyid and destination must be node ids (64 lower-case hex)")
    if not _NONCE.fullmatch(nonce) or not 0 <= created < expires:
        raise malformed("nonce must match [A-Za-z0-9_-]{16,64}; need 0 <= created < expires")
    extra = dict(extra_headers or {})
    if {name.lower() for name in extra} & _SIGNED_HEADERS:
        raise malformed("extra_headers must not carry the headers sign_request adds")
    added = {"Content-Digest": content_digest(body), DESTINATION_HEADER: destination}
    params = _profile_params(keyid, nonce, created, expires)
    base = signature_base(method=method, url=url, headers=added, params=params)
    signature = base64.b64encode(key.sign(base)).decode("ascii")
    added["Signature-Input"] = f"{PROFILE_LABEL}={params.serialize()}"
    added["Signature"] = f"{PROFILE_LABEL}=:{signature}:"
    return extra | added


def _required(params: SignatureParams) -> VerifiedRequest:
    if params.components != PROFILE_COMPONENTS:  # SPEC.md §10.6 step 3
        raise malformed("covered components are not the Tadamun profile list")
    request = VerifiedRequest(  # SPEC.md §10.6 step 4: every parameter present
        keyid=params.string("keyid"),
        nonce=params.string("nonce"),
        created=params.integer("created"),
        expires=params.integer("expires"),
    )
    if params.value("tag") != PROFILE_TAG or params.value("alg") != ALG:  # §10.6 step 5
        raise malformed("tag must be tadamun-fed-v1 and alg ed25519")
    if not _NODE_ID.fullmatch(request.keyid):  # SPEC.md §10.6 step 5
        raise malformed("keyid must be a node id (64 lower-case hex)")
    return request


def _check_freshness(req: VerifiedRequest, now: int, max_skew: int, max_validity: int) -> None:
    if not 0 < req.expires - req.created <= max_validity:  # SPEC.md §10.6 step 6
        raise malformed(f"validity must be in (0, {max_validity}] seconds")
    if req.created > now + max_skew:  # SPEC.md §10.6 step 7
        raise HttpSignatureError(ErrorCode.HTTPSIG_FROM_FUTURE, f"created {req.created}")
    if req.expires < now - max_skew:  # SPEC.md §10.6 step 8
        raise HttpSignatureError(ErrorCode.HTTPSIG_EXPIRED, f"expired {req.expires}")


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    own_node_id: str,
    resolve_key: KeyResolver,
    max_skew: int = 60,
    max_validity: int = 300,
) -> VerifiedRequest:
    """Verify a federation request under the Tadamun profile, checks in SPEC.md §10.6 order.

    ``url`` is the full target URI as the receiver knows itself. The caller must still reject
    a repeated ``nonce`` (SPEC.md §10.8).
    """
    digest, destination = (
        _header(headers, "content-digest"),
        _header(headers, "tadamun-destination"),
    )
    if digest is None or destination is None:  # SPEC.md §10.6 step 1
        raise HttpSignatureError(ErrorCode.HTTPSIG_MISSING, "no Content-Digest or destination")
    params, signature = _select(headers, PROFILE_LABEL)
    request = _required(params)
    _check_freshness(request, now, max_skew, max_validity)
    if not _NONCE.fullmatch(request.nonce):  # SPEC.md §10.6 step 9
        raise malformed("nonce must match [A-Za-z0-9_-]{16,64}")
    if destination != own_node_id:  # SPEC.md §10.6 step 10
        raise HttpSignatureError(ErrorCode.HTTPSIG_WRONG_TARGET, "not addressed to this node")
    check_content_digest(digest, body)  # SPEC.md §10.6 step 11
    key = _resolve(resolve_key, request.keyid)  # SPEC.md §10.6 step 12
    base = signature_base(method=method, url=url, headers=headers, params=params)
    _check_signature(key, signature, base)  # SPEC.md §10.6 step 13
    return request
