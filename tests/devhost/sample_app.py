"""A FunctionApp that exercises every devhost feature and records what each function saw."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import azure.functions as func

from devhost.runtime import FunctionHost

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# The queue comes from an app setting, as real apps often do, so each test can use a fresh queue.
QUEUE_SETTING = "DEVHOST_TEST_QUEUE"
BLOB_CONTAINER = "devhost-test-uploads"

# What the functions saw, in order; handlers run on the loop and in worker threads, hence the lock.
EVENTS: list[dict[str, Any]] = []
_lock = threading.Lock()


def record(function: str, **details: Any) -> None:
    with _lock:
        EVENTS.append({"function": function, "at": time.monotonic(), **details})


def events(function: str, **match: Any) -> list[dict[str, Any]]:
    """The recorded events of one function whose fields equal match."""
    with _lock:
        return [
            e for e in EVENTS if e["function"] == function and all(e.get(k) == v for k, v in match.items())
        ]


def _json(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


# --- HTTP --------------------------------------------------------------------------------------


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "int", "id": req.route_params["id"]})


@app.route(route="items/{name}", methods=["GET", "DELETE"])
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "name", "name": req.route_params["name"]})


@app.route(route="items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "literal"})


@app.route(route="files/{folder}/{name?}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route_params": dict(req.route_params)})


@app.route(route="typed/{flag:bool}/{word:alpha}/{key:guid}", methods=["GET"])
def typed(req: func.HttpRequest) -> func.HttpResponse:
    return _json(dict(req.route_params))


@app.route(route="Reports/Daily", methods=["GET"])
def daily_report(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "Reports/Daily"})


@app.route(route="echo", methods=["POST", "PUT"])
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({
            "method": req.method,
            "url": req.url,
            "params": dict(req.params),
            "body": req.get_body().decode(),
            "principal": req.headers.get("x-ms-client-principal"),
            "custom": req.headers.get("x-custom"),
        }),
        status_code=201,
        headers={"X-Echo": "yes", "Set-Cookie": "a=1"},
        mimetype="application/json",
    )


@app.route(route="cookies", methods=["GET"])
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("two cookies", headers={"Set-Cookie": "first=1"})
    response.headers.add("Set-Cookie", "second=2")
    return response


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    header = req.headers.get("x-ms-client-principal")
    if header is None:
        return _json({"signedIn": False}, status=401)
    return _json({"signedIn": True, "principal": json.loads(base64.b64decode(header)),
                  "name": req.headers.get("x-ms-client-principal-name")})


@app.route(route="slow-sync", methods=["GET"])
def slow_sync(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(0.3)
    return func.HttpResponse(threading.current_thread().name)


@app.route(route="slow-async", methods=["GET"])
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.3)
    return func.HttpResponse(threading.current_thread().name)


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("database password is hunter2")


@app.route(route="with-context", methods=["GET"])
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json({"function": context.function_name, "invocation": context.invocation_id})


@app.route(methods=["GET"])
def default_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("route defaults to the function name")


# --- Queue -------------------------------------------------------------------------------------


@app.queue_trigger(arg_name="msg", queue_name=f"%{QUEUE_SETTING}%", connection="AzureWebJobsStorage")
def queue_worker(msg: func.QueueMessage) -> None:
    """Commands in the body: "fail-until:N:tag" fails attempts before N, "always-fail:tag" always fails,
    "sleep:S:tag" sleeps S seconds; anything else succeeds."""
    body = msg.get_body()
    record("queue_worker", body=body, dequeue_count=msg.dequeue_count, id=msg.id,
           thread=threading.current_thread().name)
    text = body.decode("utf-8", errors="replace")
    if text.startswith("always-fail:"):
        raise RuntimeError("told to fail")
    if text.startswith("fail-until:") and (msg.dequeue_count or 0) < int(text.split(":")[1]):
        raise RuntimeError("not yet")
    if text.startswith("sleep:"):
        time.sleep(float(text.split(":")[1]))
    record("queue_worker_done", body=body, dequeue_count=msg.dequeue_count)


# --- Blob --------------------------------------------------------------------------------------


@app.blob_trigger(arg_name="upload", path=BLOB_CONTAINER + "/{odsCode}/{name}.csv",
                  connection="AzureWebJobsStorage")
def blob_worker(upload: func.InputStream) -> None:
    data = upload.read()
    record("blob_worker", name=upload.name, data=data, length=upload.length, uri=upload.uri,
           etag=(upload.blob_properties or {}).get("ETag"))  # type: ignore[attr-defined]
    if data.startswith(b"fail"):
        raise ValueError("bad file")


GRID_CONTAINER = "devhost-test-grid"


@app.blob_trigger(arg_name="upload", path=GRID_CONTAINER + "/{name}.csv", connection="AzureWebJobsStorage",
                  source=func.BlobSource.EVENT_GRID)
async def grid_worker(upload: func.InputStream) -> None:
    """Started by Event Grid, as Flex Consumption runs blob triggers."""
    record("grid_worker", name=upload.name, data=upload.read(),
           etag=(upload.blob_properties or {}).get("ETag"))  # type: ignore[attr-defined]


# --- Timer -------------------------------------------------------------------------------------


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
def every_second(timer: func.TimerRequest) -> None:
    record("every_second", past_due=timer.past_due, wall=dt.datetime.now(dt.UTC))


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
async def yearly_on_startup(timer: func.TimerRequest) -> None:
    record("yearly_on_startup", past_due=timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
async def slow_timer(timer: func.TimerRequest) -> None:
    record("slow_timer_start", past_due=timer.past_due)
    await asyncio.sleep(1.1)  # longer than the schedule's period
    record("slow_timer_end")


@app.timer_trigger(arg_name="timer", schedule="0 0 3 * * *")
async def nightly(timer: func.TimerRequest) -> None:
    record("nightly", past_due=timer.past_due, status=timer.schedule_status)  # type: ignore[attr-defined]


# --- Helpers for the tests ---------------------------------------------------------------------


def host_json(*functions: str, **queues: object) -> dict[str, Any]:
    """host.json loading only the named functions, with queue timings small enough for tests."""
    return {
        "version": "2.0",
        "functionTimeout": "00:00:30",
        "functions": list(functions),
        "extensions": {
            "http": {"routePrefix": "api", "maxConcurrentRequests": 100, "maxOutstandingRequests": 2000},
            "queues": {
                "maxPollingInterval": "00:00:00.200",
                "visibilityTimeout": "00:00:01",
                "batchSize": 8,
                "newBatchThreshold": 4,
                "maxDequeueCount": 3,
                "messageEncoding": "base64",
                **queues,
            },
        },
    }


@asynccontextmanager
async def running_host(storage: str | None, *functions: str, **queues: object) -> AsyncIterator[FunctionHost]:
    """A started FunctionHost serving the named sample functions on a free port."""
    host = FunctionHost(app, host_json(*functions, **queues), storage, port=0, shutdown_timeout=5)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


async def eventually(check: Callable[[], bool], timeout: float = 8.0, what: str = "condition") -> None:
    """Wait until check() holds, polling briefly; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
