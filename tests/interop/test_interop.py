"""Run the independent JavaScript verifier of the known-answer vectors (SPEC.md §13).

`verify_vectors.mjs` was written from SPEC.md and the JSON vectors alone, without the
reference implementation: it shows the wire protocol can be implemented from the spec.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

VERIFIER = Path(__file__).with_name("verify_vectors.mjs")
REPO_ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^(\d+) passed, 0 failed$")
MIN_CHECKS = 100


def test_javascript_verifier_accepts_every_vector() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js) not installed: the independent JavaScript verifier cannot run")
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [node, str(VERIFIER)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = result.stdout.strip().splitlines()
    assert lines, output
    match = SUMMARY.match(lines[-1])
    assert match is not None, f"unexpected last line {lines[-1]!r}\n{output}"
    assert int(match.group(1)) >= MIN_CHECKS, output
