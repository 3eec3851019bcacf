"""Typed keys for what the application owns (STYLE.md §8)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.clock import Clock
from node.config import Config

__all__ = ["CLOCK", "CONFIG", "ENGINE", "SESSIONS"]

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[Any])
