"""`protocol` is sans-IO: importing it loads no server, database, network or node code."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("aiohttp", "sqlalchemy", "alembic", "node", "asyncio", "socket", "ssl", "http")


def test_importing_protocol_loads_no_io_modules() -> None:
    probe = "import json, sys, protocol, protocol.httpsig; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    assert "protocol.envelope" in loaded  # the probe really imported the package
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []
