"""devhost's stand-in for Azure Communication Services SMS: HMAC-checked sends, recorded and shown at /dev/sms."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from devhost.http_triggers import Handler
from devhost.timer_triggers import utc_now

logger = logging.getLogger("devhost.acs")

Clock = Callable[[], dt.datetime]
Route = tuple[str, str, Handler]

# ACS refuses a request whose x-ms-date is further than this from its own clock.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
# How long ACS remembers a repeatable request (its documented tracked duration).
REPEATABILITY_TRACKED = dt.timedelta(minutes=5)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIGNED_REQUIRED = frozenset({"x-ms-date", "host", "x-ms-content-sha256"})


def access_key(connection_string: str) -> bytes:
    """The decoded access key of an `endpoint=...;accesskey=<base64>` connection string."""
    from shared.adapters.acs_messages import parse_connection_string

    try:
        return base64.b64decode(parse_connection_string(connection_string)[1], validate=True)
    except binascii.Error:
        raise ValueError("the ACS access key is not base64") from None


def hmac_problem(request: web.Request, body: bytes, key: bytes, now: dt.datetime) -> str | None:
    """Why a request fails ACS's HMAC-SHA256 authentication, or None when it passes.

    The string signed is the verb, the path and query, and the signed headers' values joined by ";",
    each on its own line; the body is bound in through x-ms-content-sha256.
    """
    scheme, _, parameters = request.headers.get("Authorization", "").partition(" ")
    if scheme != "HMAC-SHA256":
        return "no HMAC-SHA256 authorization"
    fields = dict(part.split("=", 1) for part in parameters.split("&") if "=" in part)
    signed = [name for name in fields.get("SignedHeaders", "").split(";") if name]
    problem = _header_problem(request, body, signed, now)
    if problem:
        return problem
    values = [request.host if name.lower() == "host" else request.headers.get(name, "") for name in signed]
    to_sign = f"{request.method}\n{unquote(request.raw_path)}\n{';'.join(values)}"
    expected = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        return "the signature does not match"
    return None


def _header_problem(request: web.Request, body: bytes, signed: list[str], now: dt.datetime) -> str | None:
    if not {name.lower() for name in signed} >= _SIGNED_REQUIRED:
        return "x-ms-date, host and x-ms-content-sha256 must be signed"
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    if request.headers.get("x-ms-content-sha256") != digest:
        return "x-ms-content-sha256 does not match the body"
    try:
        sent = parsedate_to_datetime(request.headers.get("x-ms-date", ""))
    except (TypeError, ValueError):
        return "x-ms-date is not an HTTP date"
    if sent.tzinfo is None or abs(now - sent) > MAX_CLOCK_SKEW:
        return "x-ms-date is too far from now"
    return None


def refused(reason: str) -> web.Response:
    logger.warning("ACS stand-in refused a request: %s", reason)
    return web.json_response({"error": {"code": "Denied", "message": "Denied by the resource provider."}},
                             status=401)


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: float | None = None
    per_recipient: bool = False


@dataclass
class Faults:
    """Failures to answer with, in order, each for its count of requests: to exercise retries."""

    pending: list[Fault] = field(default_factory=list)

    def take(self) -> Fault | None:
        while self.pending and self.pending[0].remaining <= 0:
            self.pending.pop(0)
        if not self.pending:
            return None
        fault = self.pending[0]
        fault.remaining -= 1
        return fault

    async def post(self, request: web.Request) -> web.StreamResponse:
        """`{"status": 429|500|..., "count": N, "retryAfter": seconds, "recipient": bool}` queues a fault."""
        try:
            document = json.loads(await request.read())
            status, count = int(document["status"]), int(document.get("count", 1))
            retry_after = document.get("retryAfter")
            fault = Fault(status, count, float(retry_after) if retry_after is not None else None,
                          bool(document.get("recipient", False)))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected {status, count, retryAfter?, recipient?}"}, status=400)
        if not 400 <= status <= 599 or count < 1:
            return web.json_response({"error": "status must be 4xx or 5xx and count at least 1"}, status=400)
        self.pending.append(fault)
        return web.json_response({"queued": len(self.pending)}, status=201)

    async def clear(self, request: web.Request) -> web.StreamResponse:
        self.pending.clear()
        return web.Response(status=204)


def fault_response(fault: Fault) -> web.Response:
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
    return web.json_response({"error": {"code": "Fault", "message": f"devhost fault {fault.status}"}},
                             status=fault.status, headers=headers)


@dataclass(frozen=True)
class Remembered:
    fingerprint: str
    first_sent: dt.datetime
    answer: Any


@dataclass
class RepeatabilityMemory:
    """Repeatable requests (OASIS Repeatable Requests 1.0) as ACS keeps them: 5 minutes from first sent."""

    clock: Clock
    seen: dict[str, Remembered] = field(default_factory=dict)

    def recall(self, request_id: str, first_sent: str | None, fingerprint: str) -> Remembered | int | None:
        """The first answer for a repeat; 400/412 for a request ACS would reject; None for a new one."""
        try:
            uuid.UUID(request_id)
            sent = parsedate_to_datetime(first_sent or "")
        except (TypeError, ValueError):
            return 400
        if self.clock() - sent > REPEATABILITY_TRACKED:
            return 412
        known = self.seen.get(request_id)
        if known is None:
            return None
        return known if known.fingerprint == fingerprint else 400

    def remember(self, request_id: str, first_sent: str, fingerprint: str, answer: Any) -> None:
        self.seen[request_id] = Remembered(fingerprint, parsedate_to_datetime(first_sent), answer)
        # Forget what ACS would have forgotten, so a long-running devhost does not grow without bound.
        horizon = self.clock() - REPEATABILITY_TRACKED
        for key in [k for k, v in self.seen.items() if v.first_sent < horizon]:
            del self.seen[key]


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@dataclass(frozen=True)
class SentSms:
    to: str
    sender: str
    message: str
    received_at: dt.datetime
    message_id: str

    def as_json(self) -> dict[str, str]:
        return {"to": self.to, "from": self.sender, "message": self.message,
                "receivedAt": self.received_at.isoformat(), "messageId": self.message_id}


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass
class SmsStandIn:
    """`POST /sms?api-version=2021-03-07` as SmsClient sends it, and the pages that show what arrived."""

    key: bytes
    clock: Clock = utc_now
    messages: list[SentSms] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    memory: RepeatabilityMemory = field(init=False)
    requests: int = 0

    def __post_init__(self) -> None:
        self.memory = RepeatabilityMemory(self.clock)

    def routes(self) -> list[Route]:
        return [("POST", "/sms", self.send), ("GET", "/dev/sms", self.page),
                ("POST", "/dev/sms/faults", self.faults.post), ("DELETE", "/dev/sms/faults", self.faults.clear)]

    async def send(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        problem = hmac_problem(request, body, self.key, self.clock())
        if problem:
            return refused(problem)
        self.requests += 1
        fault = self.faults.take()
        if fault is not None and not fault.per_recipient:
            return fault_response(fault)
        try:
            document = json.loads(body)
            sender, text = str(document["from"]), str(document["message"])
            recipients = [dict(r) for r in document["smsRecipients"]]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": {"code": "BadRequest", "message": "Invalid request body"}}, status=400)
        if not 1 <= len(recipients) <= 100:
            return web.json_response({"error": {"code": "BadRequest", "message": "1 to 100 recipients"}}, status=400)
        return web.json_response({"value": [self._one(sender, text, r, fault) for r in recipients]}, status=202)

    def _one(self, sender: str, text: str, recipient: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        to = str(recipient.get("to", ""))
        request_id = recipient.get("repeatabilityRequestId")
        first_sent = recipient.get("repeatabilityFirstSent")
        fingerprint = _fingerprint(sender, to, text)
        if request_id is not None:
            recalled = self.memory.recall(str(request_id), first_sent, fingerprint)
            if isinstance(recalled, Remembered):
                return {**recalled.answer, "repeatabilityResult": "accepted"}
            if isinstance(recalled, int):
                return {"to": to, "httpStatusCode": recalled, "successful": False, "repeatabilityResult": "rejected",
                        "errorMessage": "The repeatable request was rejected."}
        if fault is not None:
            answer: dict[str, Any] = {"to": to, "httpStatusCode": fault.status, "successful": False,
                                      "errorMessage": f"devhost fault {fault.status}"}
        elif not _E164.match(to):
            answer = {"to": to, "httpStatusCode": 400, "successful": False,
                      "errorMessage": "Invalid To phone number format."}
        else:
            message_id = f"Outgoing_{self.clock():%Y%m%d%H%M%S}{uuid.uuid4()}"
            self.messages.append(SentSms(to, sender, text, self.clock(), message_id))
            answer = {"to": to, "messageId": message_id, "httpStatusCode": 202, "successful": True}
        # 429 and 5xx answers are not kept: a repeat of those runs again (as the standard says for 5xx).
        if request_id is not None and answer["httpStatusCode"] < 500 and answer["httpStatusCode"] != 429:
            self.memory.remember(str(request_id), str(first_sent), fingerprint, answer)
        return {**answer, "repeatabilityResult": "accepted" if request_id is not None else None}

    async def page(self, request: web.Request) -> web.StreamResponse:
        if wants_json(request):
            return web.json_response({"messages": [m.as_json() for m in self.messages]})
        rows = "".join(
            f"<tr><td>{html.escape(m.received_at.isoformat(timespec='seconds'))}</td><td>{html.escape(m.to)}</td>"
            f"<td>{html.escape(m.sender)}</td><td><pre>{html.escape(m.message)}</pre></td></tr>"
            for m in reversed(self.messages))
        page = ("<!doctype html><meta charset='utf-8'><title>devhost: SMS</title><h1>Texts sent</h1>"
                f"<p>{len(self.messages)} message(s), newest first. <a href='/dev/'>devhost</a></p>"
                f"<table><tr><th>received</th><th>to</th><th>from</th><th>message</th></tr>{rows}</table>")
        return web.Response(text=page, content_type="text/html")
