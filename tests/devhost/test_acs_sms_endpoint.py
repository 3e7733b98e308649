"""devhost's ACS stand-in, driven by the real SmsClient and EmailClient: signatures, repeatability, faults, pages."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.policies import SansIOHTTPPolicy

from devhost.acs_email import EmailStandIn
from devhost.acs_sms import SmsStandIn
from devhost.timer_triggers import utc_now
from shared.adapters.acs_messages import AcsEmailSender, AcsSmsSender, parse_connection_string
from shared.adapters.clients import Clients
from shared.domain.messages import EmailContent
from shared.ports.notifications import PermanentSendError, Repeatability, TransientSendError
from shared.settings import Settings

KEY = base64.b64encode(b"acs-stand-in-test-key").decode()
MOBILE = "+447700900123"  # Ofcom's drama range: never a real person


@dataclass
class StandIn:
    """The SMS and email stand-ins served on a free loopback port, and a clock the test can move."""

    url: str
    sms: SmsStandIn
    email: EmailStandIn
    offset: dt.timedelta = dt.timedelta()

    def connection_string(self, key: str = KEY) -> str:
        return f"endpoint={self.url}/;accesskey={key}"


@contextlib.asynccontextmanager
async def running_stand_in() -> AsyncIterator[StandIn]:
    """An aiohttp server with the routes devhost adds, as devhost/__main__.py adds them."""
    holder: list[StandIn] = []

    def clock() -> dt.datetime:
        return utc_now() + (holder[0].offset if holder else dt.timedelta())

    key = base64.b64decode(KEY)
    sms, email = SmsStandIn(key, clock), EmailStandIn(key, clock)
    app = web.Application()
    for method, path, handler in (*sms.routes(), *email.routes()):
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    holder.append(StandIn(f"http://127.0.0.1:{port}", sms, email))
    try:
        yield holder[0]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def acs_clients(connection_string: str, **extra: Any) -> AsyncIterator[Clients]:
    clients = Clients(Settings(acs_connection_string=connection_string, **extra))
    try:
        yield clients
    finally:
        await clients.close()


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    async with running_stand_in() as running:
        yield running


@pytest.fixture
async def clients(stand_in: StandIn) -> AsyncIterator[Clients]:
    async with acs_clients(stand_in.connection_string()) as made:
        yield made


def fresh(first_sent: dt.datetime | None = None) -> Repeatability:
    import uuid

    return Repeatability(str(uuid.uuid4()), first_sent or utc_now())


async def listed(stand_in: StandIn, page: str = "sms") -> list[dict[str, str]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{stand_in.url}/dev/{page}", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    messages: list[dict[str, str]] = answer.json()["messages"]
    return messages


async def add_fault(stand_in: StandIn, fault: dict[str, Any], page: str = "sms") -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{stand_in.url}/dev/{page}/faults", json=fault)
    assert answer.status_code == 201


# --- Sending and showing ----------------------------------------------------------------------------


async def test_a_text_sent_with_the_sdk_over_http_is_recorded_and_listed(stand_in: StandIn, clients: Clients) -> None:
    sender = AcsSmsSender(clients.sms(), "VaxBooking")
    message_id = await sender.send(MOBILE, "Your vaccination is booked.", fresh(), tag="sms.event.t1")
    assert message_id.startswith("Outgoing_")
    [message] = await listed(stand_in)
    assert {k: message[k] for k in ("to", "from", "message")} == {
        "to": MOBILE, "from": "VaxBooking", "message": "Your vaccination is booked."}
    assert dt.datetime.fromisoformat(message["receivedAt"]).tzinfo is not None
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{stand_in.url}/dev/sms", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "Your vaccination is booked." in page.text


def test_the_connection_string_keeps_an_http_endpoint() -> None:
    # SmsClient.from_connection_string() would drop the scheme and assume https.
    assert parse_connection_string(f"endpoint=http://127.0.0.1:7071/;accesskey={KEY}") == (
        "http://127.0.0.1:7071", KEY)
    with pytest.raises(ValueError, match="endpoint"):
        parse_connection_string("accesskey=abc")


# --- Authentication ----------------------------------------------------------------------------------


async def test_a_request_signed_with_another_key_is_refused_with_401(stand_in: StandIn) -> None:
    other = base64.b64encode(b"not the key").decode()
    async with acs_clients(stand_in.connection_string(other)) as clients:
        with pytest.raises(ClientAuthenticationError):
            await AcsSmsSender(clients.sms(), "VaxBooking").send(MOBILE, "hello", fresh(), tag="t")
    assert await listed(stand_in) == []


class _AlterBodyAfterSigning(SansIOHTTPPolicy):  # type: ignore[type-arg]
    def on_request(self, request: Any) -> None:
        body = json.loads(request.http_request.body)
        body["message"] = "something else"
        request.http_request.set_json_body(body)


async def test_a_body_changed_after_signing_is_refused_with_401(stand_in: StandIn) -> None:
    from azure.communication.sms.aio import SmsClient
    from azure.core.credentials import AzureKeyCredential

    # A per-retry policy runs after the SDK's signing policy: a man in the middle, in effect.
    client = SmsClient(stand_in.url, AzureKeyCredential(KEY), per_retry_policies=[_AlterBodyAfterSigning()],
                       retry_total=0)
    async with client:
        with pytest.raises(ClientAuthenticationError):
            await client.send(from_="VaxBooking", to=MOBILE, message="hello")
    assert await listed(stand_in) == []


async def test_an_unsigned_or_stale_request_is_refused_with_401(stand_in: StandIn, clients: Clients) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{stand_in.url}/sms?api-version=2021-03-07", json={"from": "x"})
    assert answer.status_code == 401
    stand_in.offset = dt.timedelta(minutes=20)  # the stand-in's clock is 20 minutes ahead of ours
    with pytest.raises(ClientAuthenticationError):
        await AcsSmsSender(clients.sms(), "VaxBooking").send(MOBILE, "hello", fresh(), tag="t")
    assert await listed(stand_in) == []


# --- Repeatability -------------------------------------------------------------------------------------


async def test_the_same_repeatability_id_returns_the_first_result_and_sends_nothing_more(
        stand_in: StandIn, clients: Clients) -> None:
    sender = AcsSmsSender(clients.sms(), "VaxBooking")
    repeat = fresh()
    first = await sender.send(MOBILE, "hello", repeat, tag="t")
    again = await sender.send(MOBILE, "hello", repeat, tag="t")
    assert again == first
    assert len(await listed(stand_in)) == 1
    with pytest.raises(PermanentSendError) as changed:
        await sender.send(MOBILE, "a different text", repeat, tag="t")
    assert changed.value.status == 400
    assert len(await listed(stand_in)) == 1


async def test_a_repeat_first_sent_beyond_the_tracked_five_minutes_is_rejected_with_412(
        stand_in: StandIn, clients: Clients) -> None:
    sender = AcsSmsSender(clients.sms(), "VaxBooking")
    with pytest.raises(PermanentSendError) as stale:
        await sender.send(MOBILE, "hello", fresh(utc_now() - dt.timedelta(minutes=6)), tag="t")
    assert stale.value.status == 412
    assert await listed(stand_in) == []


async def test_sends_without_our_policy_still_get_distinct_ids(stand_in: StandIn) -> None:
    from azure.communication.sms.aio import SmsClient
    from azure.core.credentials import AzureKeyCredential

    # The SDK's own behaviour, which is why the policy exists: every call is a new request to ACS.
    async with SmsClient(stand_in.url, AzureKeyCredential(KEY), retry_total=0) as client:
        await client.send(from_="VaxBooking", to=MOBILE, message="hello")
        await client.send(from_="VaxBooking", to=MOBILE, message="hello")
    assert len(await listed(stand_in)) == 2


# --- Faults and refusals ---------------------------------------------------------------------------------


async def test_faults_answer_in_order_then_sends_succeed(stand_in: StandIn, clients: Clients) -> None:
    sender = AcsSmsSender(clients.sms(), "VaxBooking")
    await add_fault(stand_in, {"status": 429, "count": 1, "retryAfter": 2})
    await add_fault(stand_in, {"status": 500, "count": 1, "recipient": True})
    repeat = fresh()
    with pytest.raises(TransientSendError) as throttled:
        await sender.send(MOBILE, "hello", repeat, tag="t")
    assert (throttled.value.status, throttled.value.retry_after) == (429, 2.0)
    with pytest.raises(TransientSendError) as failed:
        await sender.send(MOBILE, "hello", repeat, tag="t")
    assert failed.value.status == 500
    # The same request id again: a 5xx answer is not remembered, so this one is carried out.
    assert (await sender.send(MOBILE, "hello", repeat, tag="t")).startswith("Outgoing_")
    assert len(await listed(stand_in)) == 1


async def test_an_invalid_number_is_a_permanent_refusal(stand_in: StandIn, clients: Clients) -> None:
    sender = AcsSmsSender(clients.sms(), "VaxBooking")
    with pytest.raises(PermanentSendError) as invalid:
        await sender.send("07700 900", "hello", fresh(), tag="t")
    assert invalid.value.status == 400
    await add_fault(stand_in, {"status": 403, "count": 1, "recipient": True})  # say, opted out at ACS
    with pytest.raises(PermanentSendError):
        await sender.send(MOBILE, "hello", fresh(), tag="t")


async def test_a_fault_must_be_an_error_status(stand_in: StandIn) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{stand_in.url}/dev/sms/faults", json={"status": 200})).status_code == 400
        assert (await http.post(f"{stand_in.url}/dev/sms/faults", content=b"nope")).status_code == 400
        await http.post(f"{stand_in.url}/dev/sms/faults", json={"status": 500, "count": 3})
        assert (await http.delete(f"{stand_in.url}/dev/sms/faults")).status_code == 204
    assert stand_in.sms.faults.take() is None


# --- Email ------------------------------------------------------------------------------------------------


async def test_an_email_is_recorded_once_for_a_repeated_request(stand_in: StandIn, clients: Clients) -> None:
    sender = AcsEmailSender(clients.email(), "DoNotReply@vaccination.example")
    content = EmailContent("Your vaccination is booked", "Booked.", "<p>Booked.</p>")
    repeat = fresh()
    assert await sender.send("someone@example.org", content, repeat) == repeat.request_id
    assert await sender.send("someone@example.org", content, repeat) == repeat.request_id
    [message] = await listed(stand_in, "email")
    assert (message["to"], message["subject"], message["message"]) == (
        "someone@example.org", "Your vaccination is booked", "Booked.")


async def test_email_faults_are_transient_and_bad_addresses_permanent(stand_in: StandIn, clients: Clients) -> None:
    sender = AcsEmailSender(clients.email(), "DoNotReply@vaccination.example")
    content = EmailContent("s", "t", "<p>t</p>")
    await add_fault(stand_in, {"status": 503, "count": 1, "retryAfter": 1}, page="email")
    with pytest.raises(TransientSendError) as busy:
        await sender.send("someone@example.org", content, fresh())
    assert (busy.value.status, busy.value.retry_after) == (503, 1.0)
    with pytest.raises(PermanentSendError):
        await sender.send("not-an-address", content, fresh())
    assert await listed(stand_in, "email") == []
