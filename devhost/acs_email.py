"""devhost's stand-in for Azure Communication Services Email: HMAC-checked sends, shown at /dev/email."""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from devhost.acs_sms import (
    Clock,
    Faults,
    Remembered,
    RepeatabilityMemory,
    Route,
    fault_response,
    hmac_problem,
    refused,
    wants_json,
)
from devhost.timer_triggers import utc_now


@dataclass(frozen=True)
class SentEmail:
    to: str
    sender: str
    subject: str
    message: str
    received_at: dt.datetime
    operation_id: str

    def as_json(self) -> dict[str, str]:
        return {"to": self.to, "from": self.sender, "subject": self.subject, "message": self.message,
                "receivedAt": self.received_at.isoformat(), "operationId": self.operation_id}


def _parse_send(body: bytes) -> tuple[str, list[str], str, str] | str:
    """(sender, recipients, subject, text) of a send request, or what is wrong with it."""
    try:
        document: dict[str, Any] = json.loads(body)
        sender = str(document["senderAddress"])
        recipients = [str(r["address"]) for r in document["recipients"]["to"]]
        content = document["content"]
        subject, text = str(content["subject"]), str(content.get("plainText") or content.get("html") or "")
    except (ValueError, KeyError, TypeError):
        return "Invalid request body"
    if not recipients or any("@" not in address for address in recipients):
        return "Invalid recipient address"
    return sender, recipients, subject, text


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)


@dataclass
class EmailStandIn:
    """`POST /emails:send` as EmailClient.begin_send() calls it, and `GET /emails/operations/{id}` for pollers."""

    key: bytes
    clock: Clock = utc_now
    messages: list[SentEmail] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    memory: RepeatabilityMemory = field(init=False)
    operations: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.memory = RepeatabilityMemory(self.clock)

    def routes(self) -> list[Route]:
        return [("POST", "/emails:send", self.send), ("GET", "/emails/operations/{operation_id}", self.operation),
                ("GET", "/dev/email", self.page), ("POST", "/dev/email/faults", self.faults.post),
                ("DELETE", "/dev/email/faults", self.faults.clear)]

    def _accepted(self, request: web.Request, operation_id: str) -> web.Response:
        location = f"{request.scheme}://{request.host}/emails/operations/{operation_id}?api-version=2025-09-01"
        return web.json_response({"id": operation_id, "status": "Running"}, status=202,
                                 headers={"Operation-Location": location, "Retry-After": "1"})

    async def send(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        early = self._before_sending(request, body)
        if early is not None:
            return early
        parsed = _parse_send(body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
        sender, recipients, subject, text = parsed
        request_id = request.headers.get("Repeatability-Request-Id")
        operation_id = request.headers.get("Operation-Id") or request_id
        if not operation_id:
            return _bad_request("Operation-Id or Repeatability-Request-Id is required here")
        if operation_id in self.operations:
            return web.json_response({"error": {"code": "Conflict", "message": "The operation exists"}}, status=409)
        self.operations.add(operation_id)
        now = self.clock()
        self.messages.extend(SentEmail(to, sender, subject, text, now, operation_id) for to in recipients)
        first_sent = request.headers.get("Repeatability-First-Sent")
        if request_id is not None and first_sent is not None:
            self.memory.remember(request_id, first_sent, body.decode("utf-8", "replace"), operation_id)
        return self._accepted(request, operation_id)

    def _before_sending(self, request: web.Request, body: bytes) -> web.Response | None:
        """The answer when the request is refused, failed on purpose, or a repeat; None to go ahead."""
        problem = hmac_problem(request, body, self.key, self.clock())
        if problem:
            return refused(problem)
        fault = self.faults.take()
        if fault is not None:
            return fault_response(fault)
        request_id = request.headers.get("Repeatability-Request-Id")
        if request_id is None:
            return None
        recalled = self.memory.recall(request_id, request.headers.get("Repeatability-First-Sent"),
                                      body.decode("utf-8", "replace"))
        if isinstance(recalled, Remembered):
            return self._accepted(request, str(recalled.answer))
        if isinstance(recalled, int):
            return web.json_response({"error": {"code": "RepeatabilityRejected", "message": "rejected"}},
                                     status=recalled, headers={"Repeatability-Result": "rejected"})
        return None

    async def operation(self, request: web.Request) -> web.StreamResponse:
        problem = hmac_problem(request, await request.read(), self.key, self.clock())
        if problem:
            return refused(problem)
        operation_id = request.match_info["operation_id"]
        if operation_id not in self.operations:
            return web.json_response({"error": {"code": "NotFound", "message": "No such operation"}}, status=404)
        return web.json_response({"id": operation_id, "status": "Succeeded"})

    async def page(self, request: web.Request) -> web.StreamResponse:
        if wants_json(request):
            return web.json_response({"messages": [m.as_json() for m in self.messages]})
        rows = "".join(
            f"<tr><td>{html.escape(m.received_at.isoformat(timespec='seconds'))}</td><td>{html.escape(m.to)}</td>"
            f"<td>{html.escape(m.subject)}</td><td><pre>{html.escape(m.message)}</pre></td></tr>"
            for m in reversed(self.messages))
        page = ("<!doctype html><meta charset='utf-8'><title>devhost: email</title><h1>Emails sent</h1>"
                f"<p>{len(self.messages)} message(s), newest first. <a href='/dev/'>devhost</a></p>"
                f"<table><tr><th>received</th><th>to</th><th>subject</th><th>text</th></tr>{rows}</table>")
        return web.Response(text=page, content_type="text/html")
