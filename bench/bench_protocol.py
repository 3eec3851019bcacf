"""Protocol throughput on this machine: encode+sign and decode+verify of a ~1 KiB envelope,
beside the raw Ed25519 verify rate measured in the same run (issue 2, SPEC.md §6).

Each figure is the median over rounds. The headline ratio runs the raw verify and the
envelope decode+verify in alternating short chunks and compares their total times, so that
CPU frequency drift and noisy neighbours hit both alike.

Run: ``python bench/bench_protocol.py [--rounds N] [--pairs N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    CallIssue,
    KeyEvent,
    KeyState,
    Location,
    SignedEnvelope,
    SigningKey,
    Threshold,
    build_envelope,
    decode,
    encode,
    sign,
    sign_key_event,
    verify,
)

NOW = 1_800_000_000


def typical_call() -> CallIssue:
    """A strike call with Arabic, Sorani and English text: about 1 KiB on the wire."""
    return CallIssue(
        kind="strike",
        title={"ar": "إضراب عام في موانئ البصرة", "ckb": "مانگرتنی گشتی لە بەندەرەکانی بەسرە",
               "en": "General strike at the ports of Basra"},
        text={"ar": "ندعو جميع عمال الموانئ والنفط إلى التوقف عن العمل. " * 3,
              "ckb": "داوا لە هەموو کرێکارانی بەندەر و نەوت دەکەین کار رابگرن. " * 2,
              "en": "We call on every port and oil worker to stop work. " * 2},
        starts=NOW + 86_400 * 14, ends=NOW + 86_400 * 15,
        location=Location("IQ-BA", "Umm Qasr"), sectors=("oil", "ports"), regions=("IQ-BA",),
        threshold=Threshold(pledges=5_000, orgs=3, deadline=NOW + 86_400 * 10),
    )  # fmt: skip


def setup() -> tuple[KeyState, SigningKey, CallIssue]:
    officers = [SigningKey.generate() for _ in range(3)]
    op = SigningKey.generate()
    event = KeyEvent.inception(
        officers=[k.public for k in officers],
        threshold=2,
        next_officers=[SigningKey.generate().public for _ in range(3)],
        op=op.public,
        created=NOW,
    )
    return KeyState.from_log([sign_key_event(event, officers[:2])]), op, typical_call()


def rate(action: Callable[[int], object], count: int) -> float:
    """Operations per second for ``count`` calls of ``action(i)``."""
    started = time.perf_counter()
    for i in range(count):
        action(i)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=1_500, help="operations per round")
    parser.add_argument("--pairs", type=int, default=60, help="interleaved chunk pairs")
    args = parser.parse_args()
    state, op, call = setup()
    body = call.to_body()

    def encode_sign(i: int) -> bytes:
        env = build_envelope(
            type=call.TYPE,
            origin=state.node_id,
            kpos=0,
            seq=i + 1,
            prev=None if i == 0 else state.head,
            created=NOW,
            body=body,
            audience="allies",
        )
        return sign(env, op).to_bytes()

    wires = [encode_sign(i) for i in range(args.count)]

    def decode_verify(i: int) -> None:
        verify(SignedEnvelope.from_bytes(wires[i]), state, now=NOW)

    raw_key = Ed25519PrivateKey.generate()
    raw_public = raw_key.public_key()
    inputs = [SignedEnvelope.from_bytes(w).envelope.signing_input for w in wires]
    raw_sigs = [raw_key.sign(m) for m in inputs]
    kib = [w[:1024] for w in wires]
    kib_sigs = [raw_key.sign(m) for m in kib]
    value = decode(wires[0])

    measures: dict[str, Callable[[int], object]] = {
        RAW: lambda i: raw_public.verify(raw_sigs[i],
                                                                                  inputs[i]),
        "raw Ed25519 verify (1 KiB message)": lambda i: raw_public.verify(kib_sigs[i], kib[i]),
        "envelope decode+verify": decode_verify,
        "envelope encode+sign": encode_sign,
        "canonical decode only": lambda i: decode(wires[i]),
        "canonical encode only": lambda i: encode(value),
    }  # fmt: skip
    figures: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(args.rounds):
        for name, action in measures.items():
            figures[name].append(rate(action, args.count))

    print(
        f"envelope size: {len(wires[0])} bytes on the wire; {args.rounds} rounds of "
        f"{args.count} operations; medians"
    )
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"  {name:45s} {median:>10,.0f} /s  {1e6 / median:8.1f} µs")
    raw, ours = paired_times(measures[RAW], decode_verify, args.count, args.pairs)
    print(
        f"decode+verify / raw verify, {args.pairs} interleaved pairs of {args.count // 3} "
        f"operations: {raw / ours:.1%}  (target >= 85%)"
    )


RAW = "raw Ed25519 verify (56-byte signing input)"


def paired_times(
    raw: Callable[[int], object], ours: Callable[[int], object], count: int, pairs: int
) -> tuple[float, float]:
    """Total seconds of each, run in alternating short chunks so drift hits both alike."""
    chunk = count // 3
    totals = [0.0, 0.0]
    for p in range(pairs):
        start = (p * chunk) % (count - chunk)
        for slot, action in enumerate((raw, ours)):
            began = time.perf_counter()
            for i in range(start, start + chunk):
                action(i)
            totals[slot] += time.perf_counter() - began
    return totals[0], totals[1]


if __name__ == "__main__":
    main()
