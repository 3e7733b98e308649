"""The Functions host's admin API for running a non-HTTP function now, as `func start` serves it locally.

`GET /admin/functions` lists the app's functions with their bindings (the shape of the host's function
metadata: name, config.bindings, ...). `POST /admin/functions/{name}` with `{"input": "..."}` runs a timer,
queue or blob function once, now, and answers 202 at once; the run is logged like any other invocation.
The input means what it means to the host: ignored for a timer (the function gets a TimerRequest that is
not past due), the message body for a queue trigger, the blob path (`container/name`) for a blob trigger,
the documents (a JSON array) for a Cosmos DB trigger.
HTTP functions are called on their routes instead (400). devhost serves this only on its own loopback
address, without the master key the host would ask for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from azure.functions import Document, DocumentList
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

logger = logging.getLogger("devhost")

ADMIN_FUNCTIONS = "/admin/functions"


@dataclass(frozen=True)
class AdminFunction:
    """A function as the admin API shows and runs it."""

    name: str
    trigger: str
    bindings: list[dict[str, Any]]
    run: Callable[[str], Awaitable[object]] | None  # None: not runnable here (an HTTP function)


def _plain(value: object) -> object:
    """A binding property as function.json spells it: enums as their strings ("in" for a direction)."""
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name.lower()
    return value


def bindings_of(function: Any) -> list[dict[str, Any]]:
    """A function's bindings as function.json holds them: enum values as their strings."""
    found = []
    for binding in function.get_bindings():
        found.append({key: _plain(value) for key, value in binding.get_dict_repr().items()})
    return found


def documents_input(text: str) -> DocumentList:
    """A Cosmos DB trigger's input: the documents, a JSON array (or one JSON object)."""
    value = json.loads(text or "[]")
    documents = value if isinstance(value, list) else [value]
    return DocumentList([Document.from_dict(document) for document in documents])


def timer_input(_: str) -> TimerRequest:
    now = dt.datetime.now(dt.UTC).isoformat()
    return TimerRequest(past_due=False, schedule_status={"Last": None, "Next": now, "LastUpdated": now},
                        schedule={"AdjustForDST": True})


def queue_input(text: str) -> QueueMessage:
    now = dt.datetime.now(dt.UTC)
    return QueueMessage(id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=1, insertion_time=now,
                        expiration_time=now + dt.timedelta(days=7), time_next_visible=now, pop_receipt="admin")


@dataclass
class AdminApi:
    functions: dict[str, AdminFunction] = field(default_factory=dict)
    _runs: set[asyncio.Task[None]] = field(default_factory=set)

    def add(self, function: AdminFunction) -> None:
        self.functions[function.name] = function

    def routes(self) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        return [("GET", ADMIN_FUNCTIONS, self.list), ("POST", ADMIN_FUNCTIONS + "/{name}", self.run)]

    async def list(self, request: web.Request) -> web.StreamResponse:
        base = f"{request.scheme}://{request.host}"
        return web.json_response([
            {"name": f.name, "config": {"bindings": f.bindings, "disabled": False}, "language": "python",
             "isDisabled": False, "href": f"{base}{ADMIN_FUNCTIONS}/{f.name}"}
            for f in sorted(self.functions.values(), key=lambda f: f.name)])

    async def run(self, request: web.Request) -> web.StreamResponse:
        function = self.functions.get(request.match_info["name"])
        if function is None:
            return web.json_response({"error": "no such function"}, status=404)
        if function.run is None:
            return web.json_response({"error": f"{function.name} is an HTTP function: call its route"}, status=400)
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        given = body.get("input", "") if isinstance(body, dict) else None
        if not isinstance(given, str):
            return web.json_response({"error": 'send {"input": "<text>"}'}, status=400)
        task = asyncio.create_task(self._run(function, given), name=f"devhost-admin-{function.name}")
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return web.Response(status=202)

    @staticmethod
    async def _run(function: AdminFunction, given: str) -> None:
        assert function.run is not None
        try:
            await function.run(given)
        except Exception:
            # The invocation logged the failure with its stack; nobody is waiting for the answer.
            logger.debug("%s: the admin run failed", function.name)

    async def stop(self, grace: float) -> None:
        if self._runs:
            _, pending = await asyncio.wait(set(self._runs), timeout=grace)
            for task in pending:
                task.cancel()
