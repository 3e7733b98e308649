"""devhost's HTTP triggers over real HTTP: routing, methods, concurrency, errors and sign-in."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from devhost.routes import MethodNotAllowed, RouteTable, RouteTemplate
from devhost.runtime import FunctionHost
from tests.conftest import EmulatorEndpoints
from tests.devhost import sample_app
from tests.devhost.sample_app import host_json, running_host

HTTP_FUNCTIONS = (
    "health", "item_by_id", "item_by_name", "special_item", "files", "typed", "daily_report", "echo",
    "cookies", "whoami", "slow_sync", "slow_async", "boom", "with_context", "default_route",
)  # fmt: skip


@pytest.fixture(scope="module")
async def host(emulators: EmulatorEndpoints) -> AsyncIterator[FunctionHost]:
    async with running_host(emulators.storage_connection_string, *HTTP_FUNCTIONS) as running:
        yield running


@pytest.fixture
async def client(host: FunctionHost) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=host.url, timeout=10) as http:
        yield http


# --- Route templates, in process -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items/{id:int}", "items/42", {"id": "42"}),
        ("items/{id:int}", "items/-7", {"id": "-7"}),
        ("items/{id:int}", "items/4x", None),
        ("items/{id:int}", "items/99999999999", None),  # outside Int32
        ("items/{id:int:range(1,10)}", "items/11", None),
        ("items/{id:long}", "items/99999999999", {"id": "99999999999"}),
        ("a/{x?}", "a", {}),
        ("a/{x=7}", "a", {"x": "7"}),
        ("a/{x:madeup}", "a/anything", {"x": "anything"}),  # unknown constraint: plain parameter
        ("files/{*rest}", "files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("files/{*rest}", "files", {}),
        ("dl/{name}.{ext}", "dl/archive.tar.gz", {"name": "archive.tar", "ext": "gz"}),
        ("Reports/Daily", "rEpOrTs/DAILY", {}),
        ("a/{x}", "a/b/c", None),
    ],
)
def test_route_template_matches_like_aspnet(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path.split("/")) == expected


def test_route_table_prefers_literal_over_constrained_over_plain_parameter() -> None:
    table: RouteTable[str] = RouteTable.with_prefix("api")
    table.add("items/{name}", ["GET"], "plain")
    table.add("items/{id:int}", ["GET"], "int")
    table.add("items/special", ["GET"], "literal")
    table.add("{area}/special", ["GET"], "leading-parameter")

    def target(path: str) -> object:
        found = table.find("GET", path.split("/"))
        return getattr(found, "target", found)

    assert target("api/items/special") == "literal"
    assert target("api/items/5") == "int"
    assert target("api/items/five") == "plain"
    assert target("api/other/special") == "leading-parameter"
    assert target("elsewhere/items/5") is None
    assert isinstance(table.find("POST", ["api", "items", "5"]), MethodNotAllowed)


# --- Over HTTP -------------------------------------------------------------------------------------


async def test_route_defaults_to_function_name_under_route_prefix(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/health")).text == "ok"
    assert (await client.get("/api/default_route")).status_code == 200
    assert (await client.get("/health")).status_code == 404  # only under the prefix


async def test_int_constraint_and_literal_segment_choose_between_overlapping_routes(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/items/42")).json() == {"route": "int", "id": "42"}
    assert (await client.get("/api/items/abc")).json() == {"route": "name", "name": "abc"}
    assert (await client.get("/api/items/special")).json() == {"route": "literal"}
    assert (await client.get("/api/items/SPECIAL")).json() == {"route": "literal"}
    # Route values arrive URL-decoded.
    assert (await client.get("/api/items/a%20b")).json() == {"route": "name", "name": "a b"}


async def test_optional_parameter_may_be_absent(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/files/docs")).json() == {"route_params": {"folder": "docs"}}
    assert (await client.get("/api/files/docs/a.txt")).json() == {
        "route_params": {"folder": "docs", "name": "a.txt"}
    }
    assert (await client.get("/api/files/docs/")).status_code == 200  # a trailing slash is ignored
    assert (await client.get("/api/files/docs/a/b")).status_code == 404


async def test_bool_alpha_and_guid_constraints_reject_other_values(client: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    response = await client.get(f"/api/typed/True/abc/{key}")
    assert response.status_code == 200
    assert response.json() == {"flag": "True", "word": "abc", "key": key}
    assert (await client.get(f"/api/typed/yes/abc/{key}")).status_code == 404
    assert (await client.get(f"/api/typed/true/ab1/{key}")).status_code == 404
    assert (await client.get("/api/typed/true/abc/not-a-guid")).status_code == 404


async def test_literal_segments_and_prefix_match_case_insensitively(client: httpx.AsyncClient) -> None:
    assert (await client.get("/API/reports/DAILY")).json() == {"route": "Reports/Daily"}


async def test_unknown_path_is_404_and_known_path_with_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/no-such-function")).status_code == 404
    response = await client.post("/api/health")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    # items/42 matches the int route (GET) and the name route (GET, DELETE): DELETE goes to the latter.
    assert (await client.delete("/api/items/42")).json() == {"route": "name", "name": "42"}
    response = await client.put("/api/items/42")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"


async def test_request_reaches_handler_whole_and_response_comes_back_whole(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/echo?x=1&y=two", content=b"payload \xe2\x9c\x93", headers={"X-Custom": "kept"}
    )
    assert response.status_code == 201
    assert response.headers["x-echo"] == "yes"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["set-cookie"] == "a=1"
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"].endswith("/api/echo?x=1&y=two")
    assert seen["params"] == {"x": "1", "y": "two"}
    assert seen["body"] == "payload \u2713"
    assert seen["custom"] == "kept"
    assert seen["principal"] is None


async def test_several_set_cookie_headers_are_all_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cookies")
    assert response.headers.get_list("set-cookie") == ["first=1", "second=2"]
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_unhandled_exception_is_500_with_empty_body_and_logged_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="devhost"):
        response = await client.get("/api/boom")
    assert response.status_code == 500
    assert response.content == b""
    failed = [r for r in caplog.records if "Executed 'Functions.boom' (Failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None
    assert "hunter2" in str(failed[0].exc_info[1])


@pytest.mark.parametrize("route", ["slow-sync", "slow-async"])
async def test_sync_and_async_handlers_serve_requests_concurrently(
    client: httpx.AsyncClient, route: str
) -> None:
    started = time.perf_counter()
    responses = await asyncio.gather(*(client.get(f"/api/{route}") for _ in range(10)))
    elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in responses)
    assert elapsed < 1.5, f"10 requests of 0.3 s took {elapsed:.2f} s: not concurrent"
    threads = {r.text for r in responses}
    if route == "slow-sync":
        assert all(name.startswith("devhost-fn") for name in threads)  # off the event loop
    else:
        assert threads == {"MainThread"}


async def test_client_principal_header_passes_through_untouched(client: httpx.AsyncClient) -> None:
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": []}).encode()).decode()
    response = await client.get("/api/whoami", headers={"x-ms-client-principal": principal})
    assert response.json()["principal"] == {"auth_typ": "aad", "claims": []}


async def test_dev_signin_cookie_adds_principal_header_and_signout_removes_it(host: FunctionHost) -> None:
    async with httpx.AsyncClient(base_url=host.url) as browser:
        assert (await browser.get("/api/whoami")).status_code == 401
        signin = await browser.get("/dev/signin", params={"roles": "NationalAdmin,SiteManager", "name": "Ada"})
        assert signin.status_code == 200
        seen = (await browser.get("/api/whoami")).json()
        assert seen["signedIn"] is True
        assert seen["name"] == "Ada"
        principal = seen["principal"]
        assert principal["auth_typ"] == "aad"
        assert principal["name_typ"] == "name" and principal["role_typ"] == "roles"
        claims = [(c["typ"], c["val"]) for c in principal["claims"]]
        assert ("name", "Ada") in claims
        assert [v for t, v in claims if t == "roles"] == ["NationalAdmin", "SiteManager"]
        assert (await browser.get("/dev/me")).json()["roles"] == ["NationalAdmin", "SiteManager"]

        # An explicit header wins over the cookie, as it is what the platform would have sent.
        explicit = base64.b64encode(b'{"claims": []}').decode()
        other = await browser.get("/api/whoami", headers={"x-ms-client-principal": explicit})
        assert other.json()["principal"] == {"claims": []}

        redirect = await browser.get("/dev/signout", params={"redirect": "/dev/"})
        assert redirect.status_code == 302 and redirect.headers["location"] == "/dev/"
        assert (await browser.get("/api/whoami")).status_code == 401


async def test_dev_signin_redirects_only_to_local_paths(client: httpx.AsyncClient) -> None:
    local = await client.get("/dev/signin", params={"roles": "SiteStaff", "redirect": "/api/whoami"})
    assert local.status_code == 302 and local.headers["location"] == "/api/whoami"
    remote = await client.get("/dev/signin", params={"roles": "SiteStaff", "redirect": "//evil.example"})
    assert remote.status_code == 200


async def test_context_parameter_receives_function_name_and_invocation_id(client: httpx.AsyncClient) -> None:
    first, second = (await client.get("/api/with-context")).json(), (await client.get("/api/with-context")).json()
    assert first["function"] == "with_context"
    assert first["invocation"] != second["invocation"]


async def test_http_only_app_needs_no_storage_and_serves_extra_dev_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)

    async def sms(request: web.Request) -> web.Response:
        return web.json_response({"sent": (await request.json())["to"]})

    host = FunctionHost(sample_app.app, host_json("health"), None, port=0)
    host.add_dev_route("POST", "/dev/sms", sms)
    await host.start()
    try:
        async with httpx.AsyncClient(base_url=host.url) as http:
            assert (await http.get("/api/health")).text == "ok"
            assert (await http.post("/dev/sms", json={"to": "+447700900000"})).json() == {"sent": "+447700900000"}
            assert "health" in (await http.get("/dev/")).text
        with pytest.raises(RuntimeError):
            host.add_dev_route("GET", "/dev/late", sms)
    finally:
        await host.stop()
