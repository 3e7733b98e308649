"""The booking site as devhost serves it: `site/` at `/`, nhsuk-frontend's compiled files at `/assets/nhsuk/`.

A page is a file: `/manage` is `site/manage.html`, `/staff` is `site/staff/index.html` (or `staff.html`),
`/book/postcode` is `site/book/postcode.html`. Paths with a code in them (`/invite/{code}`) are rewritten
by `site/staticwebapp.config.json`, the file Azure Static Web Apps reads too, so both hosts agree.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
SITE_ROOT = ROOT / "site"
NHSUK_DIST = ROOT / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk"
CONFIG_FILE = "staticwebapp.config.json"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
# Pages change with the code and must never be served stale; the versioned framework files may be kept.
_PAGE_CACHE = "no-cache"
_ASSET_CACHE = "no-cache"
_FRAMEWORK_CACHE = "public, max-age=3600"
# Headers every answer carries when the site's config names none (it does: its globalHeaders).
_DEFAULT_HEADERS = {"X-Content-Type-Options": "nosniff"}


def content_type(path: Path) -> str:
    return _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def safe_parts(url_path: str) -> tuple[str, ...] | None:
    """The path's segments, or None when one could climb out of the root or name a hidden file."""
    if "\\" in url_path or "\x00" in url_path:
        return None
    parts = tuple(part for part in PurePosixPath(url_path).parts if part != "/")
    if any(part in (".", "..") or part.startswith(".") for part in parts):
        return None
    return parts


def _inside(root: Path, candidate: Path) -> Path | None:
    # Resolving follows symlinks, so a link inside the site cannot point outside it.
    resolved = candidate.resolve()
    return resolved if resolved.is_file() and resolved.is_relative_to(root.resolve()) else None


@dataclass(frozen=True)
class Rewrite:
    """`/invite/*` → `/invite.html`: a route pattern (a trailing `*` matches the rest) and the file served."""

    route: str
    target: str

    def matches(self, path: str) -> bool:
        if self.route.endswith("*"):
            prefix = self.route[:-1]
            return path.startswith(prefix) and len(path) > len(prefix)
        return path == self.route


def load_config(site_root: Path) -> tuple[tuple[Rewrite, ...], dict[str, str]]:
    """The rewrites and global headers of the site's staticwebapp.config.json (as Azure applies them)."""
    config = site_root / CONFIG_FILE
    if not config.is_file():
        return (), dict(_DEFAULT_HEADERS)
    document = json.loads(config.read_text())
    routes: Iterable[dict[str, object]] = document.get("routes", [])
    rewrites = tuple(Rewrite(str(r["route"]), str(r["rewrite"])) for r in routes if "rewrite" in r)
    headers = {str(k): str(v) for k, v in document.get("globalHeaders", {}).items()} or dict(_DEFAULT_HEADERS)
    return rewrites, headers


@dataclass
class StaticSite:
    """Serves the site's files and pages for GET and HEAD; anything else it does not know is a 404."""

    site_root: Path = SITE_ROOT
    framework_root: Path = NHSUK_DIST
    rewrites: tuple[Rewrite, ...] = field(init=False)
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.rewrites, self.headers = load_config(self.site_root)

    def find(self, url_path: str) -> tuple[Path, str] | None:
        """The file for a URL path and its cache policy, or None."""
        rewrite = next((r for r in self.rewrites if r.matches(url_path)), None)
        if rewrite is not None:
            url_path = rewrite.target
        parts = safe_parts(url_path)
        if parts is None or (parts and parts[0] == CONFIG_FILE):
            return None
        if parts[:2] == ("assets", "nhsuk"):
            found = _inside(self.framework_root, self.framework_root.joinpath(*parts[2:])) if parts[2:] else None
            return (found, _FRAMEWORK_CACHE) if found else None
        if parts[:2] == ("assets", "images"):
            # The framework's stylesheet names its icons at /assets/images/.
            images = self.framework_root / "assets" / "images"
            found = _inside(images, images.joinpath(*parts[2:])) if parts[2:] else None
            return (found, _FRAMEWORK_CACHE) if found else None
        base = self.site_root.joinpath(*parts)
        if parts and "." in parts[-1]:
            found = _inside(self.site_root, base)
            return (found, _ASSET_CACHE) if found else None
        for candidate in (base.with_name(base.name + ".html") if parts else None, base / "index.html"):
            if candidate is not None and (found := _inside(self.site_root, candidate)):
                return found, _PAGE_CACHE
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        found = self.find(request.path)
        if found is None:
            return web.Response(status=404, text="Page not found", headers=self.headers)
        path, cache = found
        body = path.read_bytes()
        headers = {**self.headers, "Content-Type": content_type(path), "Cache-Control": cache}
        return web.Response(body=None if request.method == "HEAD" else body, headers=headers)
