"""The node's configuration: one frozen tree, read from ``tadamun.toml`` in the data
directory, then ``TADAMUN_*`` environment variables, then command-line flags (STYLE.md §18).

Every problem is collected and reported at once, so an operator fixes a file in one pass.
The tree is passed explicitly to whatever needs it; nothing reads it through a global.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = [
    "CONFIG_FILE",
    "CallsConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "FederationConfig",
    "NodeConfig",
    "ServerConfig",
    "load_config",
]

CONFIG_FILE: Final = "tadamun.toml"
DB_FILE: Final = "tadamun.db"


class ConfigError(Exception):
    """Every problem found in the configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str = "Tadamun node"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8470
    public_url: str = ""  # empty: http://host:port
    max_body_bytes: int = 1_048_576
    shutdown_timeout: int = 10

    @property
    def base_url(self) -> str:
        """Where people and peers reach the node, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = ""  # empty: SQLite in the data directory

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """Talking to other nodes: the outbound client's limits and transport-signature windows."""

    allow_networks: tuple[str, ...] = ()  # CIDRs the client may reach although not public
    connect_timeout: float = 10.0  # seconds
    request_timeout: float = 30.0  # seconds, the whole request including the response body
    max_response_bytes: int = 4_194_304
    max_skew: int = 60  # SPEC §10.6
    max_validity: int = 300  # SPEC §10.6; also how long our own signatures are valid
    # Delivery and catch-up (DESIGN §4): retries back off exponentially with full jitter
    # from retry_base up to retry_cap seconds; workers look for work left by other
    # processes every delivery_poll seconds; catch-up runs every catchup_interval seconds.
    retry_base: int = 30
    retry_cap: int = 14_400
    delivery_poll: int = 30
    catchup_interval: int = 600


@dataclass(frozen=True, slots=True)
class CallsConfig:
    """This node's tallies of calls to action (SPEC §9.2; node.services.tallies): counts are
    rounded down to a multiple of ``tally_bucket`` and reported as 0 below ``tally_k``; a
    call gets at most one tally per ``tally_interval`` seconds; an unactivated call is void
    ``void_grace`` seconds after its deadline."""

    tally_bucket: int = 5
    tally_k: int = 5
    tally_interval: int = 60
    void_grace: int = 3_600


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    node: NodeConfig
    server: ServerConfig
    database: DatabaseConfig
    federation: FederationConfig = FederationConfig()
    calls: CallsConfig = CallsConfig()


# (section, key) -> (type, check returning a problem or None)
Check = Callable[[Any], str | None]


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65_535 else "must be between 0 and 65535"


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be positive"


def _non_empty(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "must not contain control characters (such as line breaks)"
    return None


def _http_url(value: str) -> str | None:
    problem = "must be an http(s) URL without query, e.g. https://union.example"
    if not value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return problem
    ok = parts.scheme in ("http", "https") and parts.netloc and not parts.query
    return None if ok else problem


def _seconds(value: float) -> str | None:
    return None if math.isfinite(value) and 0 < value <= 3_600 else "must be in (0, 3600] seconds"


def _validity(value: int) -> str | None:
    return None if 0 < value <= 300 else "must be between 1 and 300 (SPEC §10.6)"


def _retry_cap(value: int) -> str | None:
    return None if 0 < value <= 86_400 else "must be between 1 and 86400 seconds"


def _networks(value: tuple[str, ...]) -> str | None:
    bad = []
    for text in value:
        try:
            ipaddress.ip_network(text)
        except ValueError:
            bad.append(text)
    return f"not networks in CIDR form (such as 10.0.0.0/8): {', '.join(bad)}" if bad else None


def _per_mille(value: int) -> str | None:
    return None if 1 <= value <= 1000 else "must be between 1 and 1000 (SPEC §8.5)"


def _database_url(value: str) -> str | None:
    ok = not value or value.split(":", 1)[0] in _DATABASE_SCHEMES
    return None if ok else "must be sqlite:///PATH or postgresql://USER@HOST/DB"


_DATABASE_SCHEMES: Final = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

SCHEMA: Final[Mapping[tuple[str, str], tuple[type, Check]]] = {
    ("node", "name"): (str, _non_empty),
    ("server", "host"): (str, _non_empty),
    ("server", "port"): (int, _port),
    ("server", "public_url"): (str, _http_url),
    ("server", "max_body_bytes"): (int, _positive),
    ("server", "shutdown_timeout"): (int, _positive),
    ("database", "url"): (str, _database_url),
    ("federation", "allow_networks"): (list, _networks),
    ("federation", "connect_timeout"): (float, _seconds),
    ("federation", "request_timeout"): (float, _seconds),
    ("federation", "max_response_bytes"): (int, _positive),
    ("federation", "max_skew"): (int, _positive),
    ("federation", "max_validity"): (int, _validity),
    ("federation", "retry_base"): (int, _positive),
    ("federation", "retry_cap"): (int, _retry_cap),
    ("federation", "delivery_poll"): (int, _positive),
    ("federation", "catchup_interval"): (int, _positive),
    ("calls", "tally_bucket"): (int, _per_mille),
    ("calls", "tally_k"): (int, _per_mille),
    ("calls", "tally_interval"): (int, _positive),
    ("calls", "void_grace"): (int, _positive),
}


SECTIONS: Final = frozenset(section for section, _ in SCHEMA)


def env_name(section: str, key: str) -> str:
    return f"TADAMUN_{section}_{key}".upper()


def load_config(
    data_dir: Path,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Merge file, environment and flags (later wins); raise :class:`ConfigError` listing all."""
    problems: list[str] = []
    values: dict[tuple[str, str], Any] = {}
    values |= _from_file(data_dir / CONFIG_FILE, problems)
    values |= _from_strings(
        {k: (environ or {}).get(env_name(*k)) for k in SCHEMA}, "environment", problems
    )
    values |= _from_flags(flags or {}, problems)
    for (section, key), value in values.items():
        problem = SCHEMA[section, key][1](value)
        if problem:
            problems.append(f"{section}.{key}: {problem}")
    if problems:
        raise ConfigError(problems)
    return _build(data_dir, values)


def _from_file(path: Path, problems: list[str]) -> dict[tuple[str, str], Any]:
    if not path.exists():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
        return {}
    found: dict[tuple[str, str], Any] = {}
    for section, table in document.items():
        if section not in SECTIONS:
            problems.append(f"{path}: unknown section [{section}]")
            continue
        if not isinstance(table, dict):
            problems.append(f"{path}: [{section}] must be a table")
            continue
        for key, value in table.items():
            if (section, key) not in SCHEMA:
                problems.append(f"{path}: unknown setting {section}.{key}")
            else:
                expected = SCHEMA[section, key][0]
                converted = _typed(value, expected)
                if converted is None:
                    problems.append(f"{path}: {section}.{key} must be {_TYPE_NAMES[expected]}")
                else:
                    found[section, key] = converted
    return found


_TYPE_NAMES: Final[Mapping[type, str]] = {str: "str", int: "int", float: "float", list: "list"}


def _typed(value: object, expected: type) -> object | None:
    """A TOML value as the setting's type (a list as a tuple, an int as a float), or None."""
    if expected is float and type(value) in (int, float):
        return float(value)  # type: ignore[arg-type]
    if expected is list and type(value) is list and all(type(v) is str for v in value):
        return tuple(value)
    return value if type(value) is expected and expected is not list else None


def _from_strings(
    raw: Mapping[tuple[str, str], str | None], origin: str, problems: list[str]
) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for (section, key), text in raw.items():
        if text is None:
            continue
        expected = SCHEMA[section, key][0]
        if expected in (int, float):
            try:
                found[section, key] = expected(text)
            except ValueError:
                name = env_name(section, key) if origin == "environment" else f"{section}.{key}"
                article = "an integer" if expected is int else "a number"
                problems.append(f"{origin}: {name} must be {article}")
        elif expected is list:  # comma-separated
            found[section, key] = tuple(part.strip() for part in text.split(",") if part.strip())
        else:
            found[section, key] = text
    return found


def _from_flags(flags: Mapping[str, object], problems: list[str]) -> dict[tuple[str, str], Any]:
    raw: dict[tuple[str, str], str | None] = {}
    for name, value in flags.items():
        section, _, key = name.partition(".")
        if (section, key) not in SCHEMA:
            problems.append(f"flags: unknown setting {name}")
        elif isinstance(value, list | tuple):
            raw[section, key] = ",".join(str(v) for v in value)
        elif value is not None:
            raw[section, key] = str(value)
    return _from_strings(raw, "flags", problems)


def _build(data_dir: Path, values: Mapping[tuple[str, str], Any]) -> Config:
    def section(name: str) -> dict[str, Any]:
        return {k: v for (s, k), v in values.items() if s == name}

    database = DatabaseConfig(**section("database"))
    url = database.url or f"sqlite:///{data_dir / DB_FILE}"
    scheme, _, rest = url.partition(":")
    database = DatabaseConfig(url=f"{_DATABASE_SCHEMES[scheme]}:{rest}")
    return Config(
        data_dir=data_dir,
        node=NodeConfig(**section("node")),
        server=ServerConfig(**section("server")),
        database=database,
        federation=FederationConfig(**section("federation")),
        calls=CallsConfig(**section("calls")),
    )
