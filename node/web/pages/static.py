"""Our own static files (``node/web/static/``): read once at start-up, served from memory
under a URL that carries a hash of their content, so browsers may keep them for a year
(``Cache-Control: immutable``); gzip when the browser takes it. No CDN, no font service."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from node.web.pages.routes import Handler
from node.web.pages.security import page_headers

__all__ = ["STATIC_DIR", "Asset", "load_assets", "static_handler"]

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
TYPES: Final = {".css": "text/css", ".svg": "image/svg+xml"}
CACHE: Final = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str

    @property
    def version(self) -> str:
        return self.etag.strip('"')


def load_assets(directory: Path = STATIC_DIR) -> dict[str, Asset]:
    assets = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in TYPES and path.is_file():
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            assets[path.name] = Asset(body, gzip.compress(body, mtime=0), TYPES[path.suffix], etag)
    return assets


def static_handler(assets: dict[str, Asset]) -> Handler:
    async def serve_static(request: web.Request) -> web.StreamResponse:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound
        if request.headers.get("If-None-Match") == asset.etag:
            response = web.Response(status=304)
        elif "gzip" in request.headers.get("Accept-Encoding", ""):
            response = web.Response(body=asset.gzipped, content_type=asset.content_type)
            response.headers["Content-Encoding"] = "gzip"
        else:
            response = web.Response(body=asset.body, content_type=asset.content_type)
        response.headers["ETag"] = asset.etag
        response.headers["Cache-Control"] = CACHE
        response.headers["Vary"] = "Accept-Encoding"
        page_headers(response, cacheable=True)
        return response

    return serve_static
