"""The shipped example configuration is valid as it stands."""

from __future__ import annotations

import shutil
from pathlib import Path

from node.config import CONFIG_FILE, load_config

DEPLOY = Path(__file__).parents[2] / "deploy"


def test_example_config_loads_without_problems(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "tadamun.toml.example", tmp_path / CONFIG_FILE)
    config = load_config(tmp_path, {})
    assert config.server.base_url == "https://union.example"
    assert config.database.url.startswith("postgresql+asyncpg://")
