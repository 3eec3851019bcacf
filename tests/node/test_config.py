"""Configuration: defaults, ``tadamun.toml``, environment, flags, and every problem at once
(STYLE.md §18). Pure: no database, no network; the environment is passed explicitly."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from node.config import (
    CONFIG_FILE,
    Config,
    ConfigError,
    DatabaseConfig,
    FederationConfig,
    NodeConfig,
    ServerConfig,
    load_config,
)


def write_config(data_dir: Path, text: str) -> Path:
    path = data_dir / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(
    data_dir: Path,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(data_dir, environ, flags)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, {}, {})
    assert config == Config(
        data_dir=tmp_path,
        node=NodeConfig(name="Tadamun node"),
        server=ServerConfig(host="127.0.0.1", port=8470, public_url=""),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'tadamun.db'}"),
    )
    assert config.server.base_url == "http://127.0.0.1:8470"
    assert config.server.max_body_bytes == 1_048_576
    assert config.server.shutdown_timeout == 10
    assert config.database.is_sqlite


def test_no_environment_and_no_flags_mean_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == load_config(tmp_path, {}, {})


def test_values_from_the_file(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
[node]
name = "عمال الميناء"

[server]
host = "0.0.0.0"
port = 9000
public_url = "https://union.example"
max_body_bytes = 4096
shutdown_timeout = 3

[database]
url = "sqlite:////var/lib/tadamun/node.db"
""",
    )
    config = load_config(tmp_path, {}, {})
    assert config.node.name == "عمال الميناء"
    assert config.server == ServerConfig(
        host="0.0.0.0",  # noqa: S104 - a configured value, not a bind
        port=9000,
        public_url="https://union.example",
        max_body_bytes=4096,
        shutdown_timeout=3,
    )
    assert config.server.base_url == "https://union.example"
    assert config.database.url == "sqlite+aiosqlite:////var/lib/tadamun/node.db"
    assert config.database.is_sqlite


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    write_config(tmp_path, '[node]\nname = "file"\n[server]\nport = 9000\nhost = "10.0.0.1"\n')
    environ = {
        "TADAMUN_NODE_NAME": "env",
        "TADAMUN_SERVER_PORT": "9001",
        "TADAMUN_DATABASE_URL": "postgresql://tadamun@db/tadamun",
        "UNRELATED": "ignored",
    }
    config = load_config(tmp_path, environ, {})
    assert config.node.name == "env"
    assert config.server.port == 9001
    assert config.server.host == "10.0.0.1"  # not overridden: the file's value stays
    assert config.database.url == "postgresql+asyncpg://tadamun@db/tadamun"
    assert not config.database.is_sqlite


def test_flags_override_the_environment(tmp_path: Path) -> None:
    write_config(tmp_path, '[server]\nport = 9000\npublic_url = "https://file.example"\n')
    environ = {"TADAMUN_SERVER_PORT": "9001", "TADAMUN_NODE_NAME": "env"}
    flags = {"server.port": 0, "node.name": None, "server.public_url": "https://flag.example"}
    config = load_config(tmp_path, environ, flags)
    assert config.server.port == 0
    assert config.node.name == "env"  # a flag given as None is a flag not given
    assert config.server.public_url == "https://flag.example"


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (
            "postgres://u:p@db.example:5432/tadamun",
            "postgresql+asyncpg://u:p@db.example:5432/tadamun",
        ),
        ("postgresql://u@db/tadamun", "postgresql+asyncpg://u@db/tadamun"),
        ("postgresql+asyncpg://u@db/tadamun", "postgresql+asyncpg://u@db/tadamun"),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite:////abs/tadamun.db", "sqlite+aiosqlite:////abs/tadamun.db"),
        ("sqlite+aiosqlite:////abs/tadamun.db", "sqlite+aiosqlite:////abs/tadamun.db"),
    ],
)
@pytest.mark.parametrize("origin", ["file", "environment", "flag"])
def test_database_urls_are_normalised_to_async_drivers(
    tmp_path: Path, given: str, normalised: str, origin: str
) -> None:
    environ: dict[str, str] = {}
    flags: dict[str, object] = {}
    if origin == "file":
        write_config(tmp_path, f'[database]\nurl = "{given}"\n')
    elif origin == "environment":
        environ["TADAMUN_DATABASE_URL"] = given
    else:
        flags["database.url"] = given
    config = load_config(tmp_path, environ, flags)
    assert config.database.url == normalised
    assert config.database.is_sqlite == normalised.startswith("sqlite")


PUBLIC_URL_PROBLEM = "server.public_url: must be an http(s) URL without query"
DATABASE_URL_PROBLEM = "database.url: must be sqlite:///PATH or postgresql://USER@HOST/DB"
PORT_PROBLEM = "server.port: must be between 0 and 65535"


@pytest.mark.parametrize(
    ("file", "environ", "flags", "expected"),
    [
        pytest.param('[server]\ncolour = "red"\n', {}, {}, "unknown setting server.colour",
                     id="unknown-key"),
        pytest.param("[servr]\nport = 80\n", {}, {}, "unknown section [servr]",
                     id="unknown-section"),
        pytest.param('[server]\nport = "80"\n', {}, {}, "server.port must be int",
                     id="string-for-int"),
        pytest.param("[server]\nport = true\n", {}, {}, "server.port must be int",
                     id="bool-for-int"),
        pytest.param("[node]\nname = 7\n", {}, {}, "node.name must be str", id="int-for-str"),
        pytest.param("[server]\nport = 65536\n", {}, {}, PORT_PROBLEM, id="port-too-high"),
        pytest.param("[server]\nport = -1\n", {}, {}, PORT_PROBLEM, id="port-negative"),
        pytest.param("", {"TADAMUN_SERVER_PORT": "70000"}, {}, PORT_PROBLEM, id="env-port-range"),
        pytest.param("", {}, {"server.port": 65536}, PORT_PROBLEM, id="flag-port-range"),
        pytest.param('[server]\npublic_url = "ftp://union.example"\n', {}, {},
                     PUBLIC_URL_PROBLEM, id="public-url-scheme"),
        pytest.param('[server]\npublic_url = "https://"\n', {}, {}, PUBLIC_URL_PROBLEM,
                     id="public-url-no-host"),
        pytest.param('[server]\npublic_url = "https://u.example/?a=1"\n', {}, {},
                     PUBLIC_URL_PROBLEM, id="public-url-query"),
        pytest.param('[server]\npublic_url = "union.example"\n', {}, {}, PUBLIC_URL_PROBLEM,
                     id="public-url-relative"),
        pytest.param('[database]\nurl = "mysql://u@db/tadamun"\n', {}, {},
                     DATABASE_URL_PROBLEM, id="database-scheme"),
        pytest.param('[database]\nurl = "postgresql+psycopg://u@db/t"\n', {}, {},
                     DATABASE_URL_PROBLEM, id="database-driver"),
        pytest.param("", {"TADAMUN_DATABASE_URL": "oracle://db"}, {}, DATABASE_URL_PROBLEM,
                     id="env-database-scheme"),
        pytest.param("", {"TADAMUN_SERVER_PORT": "eighty"}, {},
                     "environment: TADAMUN_SERVER_PORT must be an integer", id="env-port-text"),
        pytest.param("", {"TADAMUN_SERVER_PORT": ""}, {},
                     "environment: TADAMUN_SERVER_PORT must be an integer", id="env-port-empty"),
        pytest.param("", {"TADAMUN_SERVER_MAX_BODY_BYTES": "1e6"}, {},
                     "environment: TADAMUN_SERVER_MAX_BODY_BYTES must be an integer",
                     id="env-int-float"),
        pytest.param("", {}, {"server.colour": "red"}, "flags: unknown setting server.colour",
                     id="unknown-flag"),
        pytest.param("", {}, {"port": 80}, "flags: unknown setting port", id="flag-no-section"),
        pytest.param('server = "x"\n', {}, {}, "[server] must be a table", id="not-a-table"),
        pytest.param("[servr]\n", {}, {}, "unknown section [servr]", id="empty-unknown-section"),
        pytest.param("[server]\nport = 80\nport = 81\n", {}, {}, "not valid TOML",
                     id="duplicate-key"),
        pytest.param("[server\nport = 80\n", {}, {}, "not valid TOML", id="bad-toml"),
        pytest.param('[node]\nname = ""\n', {}, {}, "node.name: must not be empty",
                     id="empty-name"),
        pytest.param('[server]\nhost = "  "\n', {}, {}, "server.host: must not be empty",
                     id="blank-host"),
        pytest.param("[server]\nmax_body_bytes = 0\n", {}, {},
                     "server.max_body_bytes: must be positive", id="zero-body"),
        pytest.param("", {"TADAMUN_SERVER_SHUTDOWN_TIMEOUT": "-5"}, {},
                     "server.shutdown_timeout: must be positive", id="negative-timeout"),
    ],
)  # fmt: skip
def test_each_problem_is_reported(
    tmp_path: Path, file: str, environ: dict[str, str], flags: dict[str, object], expected: str
) -> None:
    if file:
        write_config(tmp_path, file)
    problems = problems_of(tmp_path, environ, flags)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server]\ncolour = 1\n")
    assert problems_of(tmp_path, {}, {}) == [f"{path}: unknown setting server.colour"]


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_bytes(b'[node]\nname = "\xff"\n')
    problems = problems_of(tmp_path, {}, {})
    assert len(problems) == 1
    assert "not valid TOML" in problems[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
debug = true

[servr]
port = 80

[server]
colour = "red"
shutdown_timeout = "soon"
public_url = "ftp://union.example"

[database]
url = "mysql://u@db/tadamun"
""",
    )
    environ = {"TADAMUN_SERVER_PORT": "eighty", "TADAMUN_SERVER_MAX_BODY_BYTES": "0"}
    flags = {"server.port": 70_000, "server.colour": "blue"}
    problems = problems_of(tmp_path, environ, flags)
    assert sorted(problems) == sorted([
        f"{path}: unknown section [debug]",
        f"{path}: unknown section [servr]",
        f"{path}: unknown setting server.colour",
        f"{path}: server.shutdown_timeout must be int",
        "environment: TADAMUN_SERVER_PORT must be an integer",
        "flags: unknown setting server.colour",
        PUBLIC_URL_PROBLEM + ", e.g. https://union.example",
        DATABASE_URL_PROBLEM,
        "server.max_body_bytes: must be positive",
        PORT_PROBLEM,
    ])  # fmt: skip


def test_a_malformed_public_url_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """A URL that urlsplit cannot even parse (a malformed IPv6 host) is listed as a
    problem like any other, not raised as a ValueError."""
    write_config(tmp_path, '[server]\npublic_url = "http://[::1"\n')
    problems = problems_of(tmp_path, {}, {})
    assert problems == [PUBLIC_URL_PROBLEM + ", e.g. https://union.example"]


def test_valid_public_urls_are_accepted(tmp_path: Path) -> None:
    for url in ("http://localhost:8470", "https://union.example", "https://u.example/node"):
        assert load_config(tmp_path, {"TADAMUN_SERVER_PUBLIC_URL": url}).server.base_url == url


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(tmp_path, {}, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.database = DatabaseConfig(url="sqlite:///elsewhere.db")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.node.name = "renamed"  # type: ignore[misc]
    assert config == load_config(tmp_path, {}, {})


# --- [federation] -----------------------------------------------------------------------------


def test_federation_defaults(tmp_path: Path) -> None:
    federation = load_config(tmp_path, {}, {}).federation
    assert federation == FederationConfig(
        allow_networks=(), connect_timeout=10.0, request_timeout=30.0,
        max_response_bytes=4_194_304, max_skew=60, max_validity=300,
    )  # fmt: skip


def test_federation_from_file_environment_and_flags(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
[federation]
allow_networks = ["10.20.0.0/16", "fd00::/8"]
connect_timeout = 2
request_timeout = 0.5
max_response_bytes = 65536
max_skew = 30
max_validity = 120
""",
    )
    federation = load_config(tmp_path, {}, {}).federation
    assert federation == FederationConfig(("10.20.0.0/16", "fd00::/8"), 2.0, 0.5, 65_536, 30, 120)
    assert isinstance(federation.connect_timeout, float)
    environ = {
        "TADAMUN_FEDERATION_ALLOW_NETWORKS": " 127.0.0.0/8 , ::1/128,",
        "TADAMUN_FEDERATION_REQUEST_TIMEOUT": "2.5",
    }
    federation = load_config(tmp_path, environ, {}).federation
    assert federation.allow_networks == ("127.0.0.0/8", "::1/128")
    assert (federation.request_timeout, federation.max_skew) == (2.5, 30)
    flags = {"federation.allow_networks": ["192.168.0.0/24"], "federation.max_skew": 90}
    federation = load_config(tmp_path, environ, flags).federation
    assert (federation.allow_networks, federation.max_skew) == (("192.168.0.0/24",), 90)
    empty = {"TADAMUN_FEDERATION_ALLOW_NETWORKS": ""}
    assert load_config(tmp_path, empty, {}).federation.allow_networks == ()


NETWORKS_PROBLEM = "federation.allow_networks: not networks in CIDR form"
SECONDS_PROBLEM = "must be in (0, 3600] seconds"


@pytest.mark.parametrize(
    ("file", "environ", "expected"),
    [
        ('allow_networks = ["10.0.0.1/8"]', {},
         NETWORKS_PROBLEM + " (such as 10.0.0.0/8): 10.0.0.1/8"),
        ('allow_networks = ["localhost"]', {}, NETWORKS_PROBLEM),
        ('allow_networks = ["10.0.0.0/33"]', {}, NETWORKS_PROBLEM),
        ('allow_networks = "10.0.0.0/8"', {}, "federation.allow_networks must be list"),
        ("allow_networks = [10]", {}, "federation.allow_networks must be list"),
        ("", {"TADAMUN_FEDERATION_ALLOW_NETWORKS": "10.0.0.0/8,nope"}, NETWORKS_PROBLEM),
        ("connect_timeout = 0", {}, "federation.connect_timeout: " + SECONDS_PROBLEM),
        ("request_timeout = -1.5", {}, "federation.request_timeout: " + SECONDS_PROBLEM),
        ("request_timeout = 86400", {}, "federation.request_timeout: " + SECONDS_PROBLEM),
        ("request_timeout = nan", {}, "federation.request_timeout: " + SECONDS_PROBLEM),
        ("request_timeout = inf", {}, "federation.request_timeout: " + SECONDS_PROBLEM),
        ("request_timeout = true", {}, "federation.request_timeout must be float"),
        ('connect_timeout = "5"', {}, "federation.connect_timeout must be float"),
        ("", {"TADAMUN_FEDERATION_CONNECT_TIMEOUT": "five"},
         "TADAMUN_FEDERATION_CONNECT_TIMEOUT must be a number"),
        ("", {"TADAMUN_FEDERATION_CONNECT_TIMEOUT": "nan"}, SECONDS_PROBLEM),
        ("max_response_bytes = 0", {}, "federation.max_response_bytes: must be positive"),
        ("max_response_bytes = 1.5", {}, "federation.max_response_bytes must be int"),
        ("max_skew = 0", {}, "federation.max_skew: must be positive"),
        ("max_validity = 301", {}, "federation.max_validity: must be between 1 and 300"),
        ("max_validity = 0", {}, "federation.max_validity: must be between 1 and 300"),
        ("", {"TADAMUN_FEDERATION_MAX_VALIDITY": "3e2"},
         "TADAMUN_FEDERATION_MAX_VALIDITY must be an integer"),
        ("colour = 1", {}, "unknown setting federation.colour"),
    ],
)  # fmt: skip
def test_each_federation_problem_is_reported(
    tmp_path: Path, file: str, environ: dict[str, str], expected: str
) -> None:
    write_config(tmp_path, f"[federation]\n{file}\n")
    problems = problems_of(tmp_path, environ, {})
    assert len(problems) == 1, problems
    assert expected in problems[0]
