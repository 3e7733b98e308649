"""The HTTP front end: routes requests to HTTP triggers, plus devhost's own /dev/ pages and sign-in."""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devhost.hostconfig import HttpSettings, Invoke
from devhost.routes import Match, MethodNotAllowed, RouteTable

logger = logging.getLogger("devhost")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PRINCIPAL_HEADER = "x-ms-client-principal"
SIGNIN_COOKIE = "devhost_principal"
# Headers the server computes itself; a function's own value would contradict the real body.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function as the front end sees it."""

    name: str
    route: str
    methods: tuple[str, ...] | None
    invoke: Invoke


@dataclass(frozen=True)
class DevPrincipal:
    """Who the development sign-in says the caller is."""

    name: str
    roles: tuple[str, ...]

    @property
    def user_id(self) -> str:
        # Stable per name, so data a signed-in developer creates stays theirs across sign-ins.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"devhost:{self.name}"))

    def header(self) -> str:
        """x-ms-client-principal as App Service Authentication writes it: base64 of its JSON."""
        claims = [
            {"typ": "name", "val": self.name},
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": self.user_id},
            *({"typ": "roles", "val": role} for role in self.roles),
        ]
        document = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
        return base64.b64encode(json.dumps(document).encode()).decode("ascii")

    def cookie(self) -> str:
        document = json.dumps({"name": self.name, "roles": list(self.roles)}).encode()
        return base64.urlsafe_b64encode(document).decode("ascii").rstrip("=")

    @classmethod
    def from_cookie(cls, value: str) -> DevPrincipal | None:
        try:
            document = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            return cls(name=str(document["name"]), roles=tuple(str(r) for r in document["roles"]))
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None


def _request_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        lowered = key.lower()
        if lowered in headers:
            headers[lowered] += ("; " if lowered == "cookie" else ", ") + value
        else:
            headers[lowered] = value
    return headers


def _web_response(result: object) -> web.Response:
    """The Functions host's rendering of what an HTTP function returned."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(text=result, content_type="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse")
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in result.headers.items():
        if key.lower() not in _HOP_HEADERS:
            headers.add(key, value)
    if "content-type" not in headers:
        mimetype, charset = result.mimetype, result.charset
        headers["Content-Type"] = f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)


def _local_redirect(target: str | None) -> str | None:
    # Only paths on this host, so the sign-in page cannot be used to bounce a browser elsewhere.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@dataclass
class HttpFrontend:
    """The aiohttp application serving HTTP triggers under the route prefix and devhost's pages."""

    settings: HttpSettings
    describe: Callable[[], list[tuple[str, str]]] = lambda: []
    table: RouteTable[HttpFunction] = field(init=False)
    _extra_routes: list[tuple[str, str, Handler]] = field(default_factory=list)
    # What answers a path that is neither a function nor a dev route (the booking site's pages and files).
    fallback: Handler | None = None
    _runner: web.AppRunner | None = None
    _outstanding: int = 0
    _slots: asyncio.Semaphore | None = None

    def __post_init__(self) -> None:
        self.table = RouteTable.with_prefix(self.settings.route_prefix)
        if self.settings.max_concurrent_requests > 0:
            self._slots = asyncio.Semaphore(self.settings.max_concurrent_requests)

    def add_function(self, function: HttpFunction) -> None:
        self.table.add(function.route, function.methods, function)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        if self._runner is not None:
            raise RuntimeError("add dev routes before start(): aiohttp freezes its router when serving")
        self._extra_routes.append((method.upper(), path, handler))

    def url_of(self, function: HttpFunction) -> str:
        return self.table.url_path(function.route)

    async def start(self, host: str, port: int, shutdown_timeout: float) -> int:
        """Serve on host:port (0 picks a free port); returns the port."""
        # As the Functions host: a body above FUNCTIONS_REQUEST_BODY_SIZE_LIMIT is refused, never read whole.
        app = web.Application(client_max_size=self.settings.max_request_body_bytes)
        for method, path, handler in self._extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_get("/dev/signin", self._signin)
        app.router.add_get("/dev/signout", self._signout)
        app.router.add_get("/dev/me", self._me)
        app.router.add_get("/dev/", self._index)
        # Everything else goes through the Functions route table, which knows 404 from 405.
        # [\s\S], not ".": a path segment may hold an encoded newline, and it is the table's to refuse.
        app.router.add_route("*", "/{path:[\\s\\S]*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        address = self._runner.addresses[0]
        return int(address[1])

    async def stop(self) -> None:
        if self._runner is not None:
            # Stops listening, then lets in-flight requests finish within the shutdown timeout.
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [unquote(part) for part in request.rel_url.raw_path.split("/")[1:]]
        if parts and parts[-1] == "":
            parts.pop()  # ASP.NET routing ignores one trailing slash
        found = self.table.find(request.method, parts)
        if found is None:
            prefix = self.settings.route_prefix.split("/")[0].casefold()
            outside_functions = bool(prefix) and (not parts or parts[0].casefold() != prefix)
            if self.fallback is not None and outside_functions:
                return await self.fallback(request)
            return web.Response(status=404)
        if isinstance(found, MethodNotAllowed):
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(found.allowed))})
        limit = self.settings.max_outstanding_requests
        if limit > 0 and self._outstanding >= limit:
            return web.Response(status=429)
        self._outstanding += 1
        try:
            if self._slots is None:
                return await self._run(request, found)
            async with self._slots:
                return await self._run(request, found)
        finally:
            self._outstanding -= 1

    async def _run(self, request: web.Request, found: Match[HttpFunction]) -> web.Response:
        headers = _request_headers(request)
        if PRINCIPAL_HEADER not in headers:
            principal = self._principal(request)
            if principal is not None:
                headers[PRINCIPAL_HEADER] = principal.header()
                headers["x-ms-client-principal-name"] = principal.name
                headers["x-ms-client-principal-id"] = principal.user_id
                headers["x-ms-client-principal-idp"] = "aad"
        query = request.query
        params = {key: ",".join(query.getall(key)) for key in query}
        limit = self.settings.max_request_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413)  # refused from the header, before a byte of the body is read
        try:
            body = await request.read()  # stops reading past client_max_size (a chunked body has no length)
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=params,
            route_params=found.values,
            body=body,
        )
        try:
            result = await found.target.invoke(http_request)
            return _web_response(result)
        except Exception:
            # The invocation already logged the traceback; the caller learns nothing of the cause.
            logger.debug("500 for %s %s", request.method, request.rel_url, exc_info=True)
            return web.Response(status=500)

    @staticmethod
    def _principal(request: web.Request) -> DevPrincipal | None:
        value = request.cookies.get(SIGNIN_COOKIE)
        return DevPrincipal.from_cookie(value) if value else None

    async def _signin(self, request: web.Request) -> web.StreamResponse:
        roles = tuple(
            role.strip() for value in request.query.getall("roles", []) for role in value.split(",") if role.strip()
        )
        principal = DevPrincipal(name=request.query.get("name") or "Dev User", roles=roles)
        redirect = _local_redirect(request.query.get("redirect"))
        response: web.StreamResponse
        if redirect:
            response = web.Response(status=302, headers={"Location": redirect})
        else:
            response = web.json_response({"signedIn": True, "name": principal.name, "roles": list(roles)})
        response.set_cookie(SIGNIN_COOKIE, principal.cookie(), path="/", httponly=True, samesite="Lax")
        logger.info("dev sign-in as %r with roles %s", principal.name, ", ".join(roles) or "(none)")
        return response

    async def _signout(self, request: web.Request) -> web.StreamResponse:
        redirect = _local_redirect(request.query.get("redirect"))
        response: web.StreamResponse = (
            web.Response(status=302, headers={"Location": redirect})
            if redirect
            else web.json_response({"signedIn": False})
        )
        response.del_cookie(SIGNIN_COOKIE, path="/")
        return response

    async def _me(self, request: web.Request) -> web.StreamResponse:
        principal = self._principal(request)
        if principal is None:
            return web.json_response({"signedIn": False})
        return web.json_response({"signedIn": True, "name": principal.name, "roles": list(principal.roles),
                                  "userId": principal.user_id})

    async def _index(self, request: web.Request) -> web.StreamResponse:
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(what)}</td></tr>" for name, what in self.describe()
        )
        principal = self._principal(request)
        who = (
            f"Signed in as {html.escape(principal.name)} ({html.escape(', '.join(principal.roles) or 'no roles')})"
            f" &middot; <a href='/dev/signout?redirect=/dev/'>sign out</a>"
            if principal
            else "Not signed in &middot; <a href='/dev/signin?roles=NationalAdmin&amp;redirect=/dev/'>"
            "sign in as NationalAdmin</a>"
        )
        page = (
            "<!doctype html><meta charset='utf-8'><title>devhost</title><h1>devhost</h1>"
            f"<p>{who}</p><table><tr><th>function</th><th>trigger</th></tr>{rows}</table>"
        )
        return web.Response(text=page, content_type="text/html")
