"""FunctionHost: runs a FunctionApp's HTTP, queue, blob and timer triggers as the Functions host does."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import inspect
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

from devhost.admin_api import AdminApi, AdminFunction, bindings_of, documents_input, queue_input, timer_input
from devhost.blob_triggers import (
    HOSTS_CONTAINER,
    POISON_QUEUE,
    WEBHOOK_PATH,
    BlobEventSource,
    BlobFunction,
    BlobPath,
    BlobWebhook,
    run_blob_function,
)
from devhost.cosmos_triggers import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_POLL_DELAY,
    ChangeFeedListener,
    CosmosConnection,
    RetryPolicy,
)
from devhost.hostconfig import HostConfig, Invoke, resolve_connection
from devhost.http_triggers import Handler, HttpFrontend, HttpFunction
from devhost.ncrontab import CronSchedule, IntervalSchedule, parse_schedule, shortest_interval
from devhost.queue_triggers import QueueListener
from devhost.timer_triggers import Clock, TimerListener, utc_now

logger = logging.getLogger("devhost")

_SETTING = re.compile(r"%([^%]+)%")


def resolve_settings(text: str) -> str:
    """Replace %Name% with the app setting Name, as the host does in trigger properties."""

    def setting(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            raise ValueError(f"app setting {match.group(1)!r} named in {text!r} is not set")
        return value

    return _SETTING.sub(setting, text)


class _TraceContext:
    """No distributed trace locally; the shape of the worker's TraceContext."""

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext:
    """devhost has no retry policies; the shape of the worker's RetryContext."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> None:
        return None


class _Context(func.Context):
    """What a handler with a `context` parameter receives, as the Python worker passes it."""

    _thread_local = threading.local

    def __init__(self, invocation_id: str, function_name: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> Any:  # the worker's TraceContext is not exported; this has its shape
        return _TraceContext()

    @property
    def retry_context(self) -> Any:
        return _RetryContext()


@dataclass(frozen=True)
class FunctionInfo:
    """A function the host found, its trigger type and where it listens."""

    name: str
    trigger: str
    trigger_binding: dict[str, Any]
    handler: Callable[..., Any]
    bindings: list[dict[str, Any]]
    retry: dict[str, Any] | None = None  # the function's retry policy (@app.retry), as function.json holds it

    @property
    def parameter(self) -> str:
        return str(self.trigger_binding["name"])


def _plain(value: object) -> object:
    # The decorators store enums (HttpMethod.GET); the host's function.json holds their strings.
    return getattr(value, "value", value)


def discover(app: func.FunctionApp, host_json: Mapping[str, Any]) -> list[FunctionInfo]:
    """The app's functions the host would load: host.json "functions" and AzureWebJobs.X.Disabled apply."""
    # get_functions() records each name as it checks names are unique, so a second call on the same app
    # (a restarted host, tests, a CLI that looked first) would fail as a duplicate: check afresh.
    app.functions_bindings = None
    functions = app.get_functions()
    allowed = host_json.get("functions")
    found = []
    for function in functions:
        name = function.get_function_name()
        if allowed is not None and name not in allowed:
            continue
        if os.environ.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("true", "1"):
            logger.info("%s is disabled by AzureWebJobs.%s.Disabled", name, name)
            continue
        trigger = function.get_trigger()
        if name is None or trigger is None:
            continue
        binding = {key: _plain(value) for key, value in trigger.get_dict_repr().items()}
        extra = [
            b.get_dict_repr().get("type")
            for b in function.get_bindings()
            if b is not trigger and b.get_dict_repr().get("type") != "http"
        ]
        if extra:
            logger.warning("%s: devhost runs triggers only; bindings %s get no value", name, extra)
        found.append(FunctionInfo(name, str(binding["type"]), binding, function.get_user_function(),
                                  bindings_of(function), function.get_settings_dict("retry_policy")))
    unknown = set(allowed or ()) - {f.get_function_name() for f in functions}
    if unknown:
        logger.warning("host.json \"functions\" names functions the app does not have: %s",
                       ", ".join(sorted(unknown)))
    return found


class FunctionHost:
    """Hosts a FunctionApp locally: HTTP on host:port, queue/blob/timer triggers against Storage."""

    def __init__(
        self,
        app: func.FunctionApp,
        host_json: Mapping[str, Any],
        storage_connection_string: str | None,
        port: int,
        host: str = "127.0.0.1",
        *,
        clock: Clock = utc_now,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.config = HostConfig.from_json(host_json)
        self.functions = discover(app, host_json)
        self.host = host
        self.port = port
        self.clock = clock
        self.shutdown_timeout = shutdown_timeout
        self._storage = storage_connection_string or os.environ.get("AzureWebJobsStorage") or None
        self._http = HttpFrontend(self.config.http, describe=self.describe)
        threads = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
        self._executor = ThreadPoolExecutor(
            max_workers=int(threads) if threads else None, thread_name_prefix="devhost-fn"
        )
        self._queue_services: dict[str, QueueServiceClient] = {}
        self._blob_services: dict[str, BlobServiceClient] = {}
        self._queues: list[QueueListener] = []
        self._blob_sources: dict[str, BlobEventSource] = {}
        self._webhook = BlobWebhook(asyncio.Semaphore(self.config.blob_parallelism))
        self._blob_functions: dict[str, BlobFunction] = {}
        self._admin = AdminApi()
        self._http.add_route("POST", WEBHOOK_PATH, self._webhook.handle)
        for method, path, handler in self._admin.routes():
            self._http.add_route(method, path, handler)
        self._timers: dict[str, TimerListener] = {}
        self._feeds: dict[str, ChangeFeedListener] = {}
        self._descriptions: list[tuple[str, str]] = []
        self._started = False
        for info in self.functions:
            if info.trigger == "httpTrigger":
                methods = info.trigger_binding.get("methods")
                route = str(info.trigger_binding.get("route") or info.name)
                http_function = HttpFunction(
                    name=info.name,
                    route=route,
                    methods=tuple(str(_plain(m)).upper() for m in methods) if methods else None,
                    invoke=self._invoker(info, "This function was programmatically called via the host APIs."),
                )
                self._http.add_function(http_function)
                verbs = ",".join(http_function.methods) if http_function.methods else "all methods"
                self._descriptions.append((info.name, f"[{verbs}] {self._http.url_of(http_function)}"))
            self._admin.add(AdminFunction(info.name, info.trigger, info.bindings, self._admin_runner(info)))

    @property
    def url(self) -> str:
        """The base URL HTTP triggers are served under (without the route prefix)."""
        return f"http://{self.host}:{self.port}"

    def describe(self) -> list[tuple[str, str]]:
        """Each function's name and what triggers it, for logs and the /dev/ page."""
        return list(self._descriptions)

    def add_dev_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve an extra aiohttp route (e.g. a fake SMS endpoint) beside the functions; before start()."""
        self._http.add_route(method, path, handler)

    def serve_pages(self, handler: Handler) -> None:
        """Answer every GET outside the functions' prefix and the dev routes with handler (the booking site)."""
        self._http.fallback = handler

    def timer(self, function_name: str) -> TimerListener:
        """The running timer of a function, to inspect its schedule or drive it in tests."""
        return self._timers[function_name]

    def _admin_runner(self, info: FunctionInfo) -> Callable[[str], Awaitable[object]] | None:
        """How `POST /admin/functions/{name}` runs the function with its input (None: an HTTP function)."""
        invoke = self._invoker(info, "This function was programmatically called via the host APIs.")
        if info.trigger == "httpTrigger":
            return None
        if info.trigger == "timerTrigger":
            async def run_timer(_: str) -> object:
                listener = self._timers.get(info.name)
                return await (listener.run_now() if listener is not None else invoke(timer_input("")))
            return run_timer
        if info.trigger == "queueTrigger":
            return lambda text: invoke(queue_input(text))
        if info.trigger == "cosmosDBTrigger":
            return lambda text: invoke(documents_input(text))
        if info.trigger == "blobTrigger":
            async def run_blob(path: str) -> object:
                function = self._blob_functions.get(info.name)
                container, _, name = path.strip("/").partition("/")
                if function is None or container != function.path.container or not name:
                    raise ValueError(f"{info.name}: the input names no blob in its container")
                return await run_blob_function(function, name)
            return run_blob
        return invoke

    def _invoker(self, info: FunctionInfo, reason: str) -> Invoke:
        handler = info.handler
        is_async = inspect.iscoroutinefunction(handler)
        wants_context = "context" in inspect.signature(handler).parameters
        name, parameter, timeout = info.name, info.parameter, self.config.function_timeout
        executor = self._executor

        async def invoke(value: object) -> object:
            logging_info = logger.isEnabledFor(logging.INFO)
            # An id costs a few microseconds per request; made only when someone will see it.
            invocation_id = str(uuid.uuid4()) if logging_info or wants_context else ""
            arguments: dict[str, object] = {parameter: value}
            if wants_context:
                arguments["context"] = _Context(invocation_id, name)
            if logging_info:
                logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", name, reason, invocation_id)
            started = time.perf_counter()
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    if is_async:
                        result = await handler(**arguments)
                    else:
                        # Copying the context lets contextvars set around the call reach the handler.
                        call = functools.partial(contextvars.copy_context().run, handler, **arguments)
                        result = await asyncio.get_running_loop().run_in_executor(executor, call)
            except Exception:
                elapsed = round((time.perf_counter() - started) * 1000)
                invocation_id = invocation_id or str(uuid.uuid4())
                if deadline.expired():
                    logger.error("Timeout value of %s s exceeded by function 'Functions.%s' (Id: '%s')",
                                 timeout, name, invocation_id)
                logger.exception("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", name,
                                 invocation_id, elapsed)
                raise
            if logging_info:
                logger.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", name, invocation_id,
                            round((time.perf_counter() - started) * 1000))
            return result

        return invoke

    def _connection(self, binding: Mapping[str, Any]) -> str:
        connection = resolve_connection(binding.get("connection"), self._storage)
        if not connection:
            raise RuntimeError(
                f"no storage connection for {binding.get('connection') or 'AzureWebJobsStorage'!r}: "
                "set it in the environment or pass storage_connection_string"
            )
        return connection

    def _queue_service(self, connection: str) -> QueueServiceClient:
        if connection not in self._queue_services:
            self._queue_services[connection] = QueueServiceClient.from_connection_string(connection)
        return self._queue_services[connection]

    def _blob_service(self, connection: str) -> BlobServiceClient:
        if connection not in self._blob_services:
            self._blob_services[connection] = BlobServiceClient.from_connection_string(connection)
        return self._blob_services[connection]

    async def start(self) -> None:
        """Start listening: HTTP server, queue and blob polling, timers."""
        if self._started:
            raise RuntimeError("FunctionHost already started")
        self._started = True
        try:
            await self._start_listeners()
            self.port = await self._http.start(self.host, self.port, self.shutdown_timeout)
            # Event Grid delivers to the webhook, so the blob events start once it answers.
            for source in self._blob_sources.values():
                source.deliver_to = self.url
                await source.start()
        except BaseException:
            await self.stop()
            raise
        lines = [f"  {name}: {what}" for name, what in self._descriptions]
        logger.info("devhost serving %d function(s) on %s\n%s", len(lines), self.url, "\n".join(lines))

    async def _start_listeners(self) -> None:
        queues = self.config.queues
        running_visibility = round(self.config.function_timeout + 60) if self.config.function_timeout else 600
        for info in self.functions:
            binding = info.trigger_binding
            if info.trigger == "queueTrigger":
                queue_name = resolve_settings(str(binding["queueName"])).lower()
                listener = QueueListener(
                    function_name=info.name,
                    queue_name=queue_name,
                    service=self._queue_service(self._connection(binding)),
                    settings=queues,
                    invoke=self._invoker(info, f"New queue message detected on '{queue_name}'."),
                    running_visibility=running_visibility,
                )
                await listener.start()
                self._queues.append(listener)
                self._descriptions.append((info.name, f"queueTrigger on {queue_name!r}"))
            elif info.trigger == "blobTrigger":
                self._add_blob_function(info)
            elif info.trigger == "timerTrigger":
                await self._start_timer(info)
            elif info.trigger == "cosmosDBTrigger":
                await self._start_change_feed(info)
            elif info.trigger != "httpTrigger":
                logger.warning("%s: devhost does not run %s triggers; skipping it", info.name, info.trigger)

    def _add_blob_function(self, info: FunctionInfo) -> None:
        """Subscribe the function to its storage account's blob events (started once HTTP is up)."""
        binding = info.trigger_binding
        path = BlobPath.parse(resolve_settings(str(binding["path"])))
        connection = self._connection(binding)
        function = BlobFunction(info.name, path, self._blob_service(connection),
                                self._invoker(info, f"New blob detected in '{path.container}' (Event Grid)."))
        self._blob_functions[info.name] = function
        self._webhook.add(function)
        source = self._blob_sources.get(connection)
        if source is None:
            host_storage = self._connection({})
            service = self._blob_service(connection)
            source = BlobEventSource(
                account=service.account_name or "devstoreaccount1",
                service=service,
                hosts=self._blob_service(host_storage).get_container_client(HOSTS_CONTAINER),
                poison=self._queue_service(host_storage).get_queue_client(POISON_QUEUE),
                settings=self.config.queues,
                deliver_to="",
            )
            self._blob_sources[connection] = source
        source.subscribe(function)
        if str(binding.get("source") or "") != "EventGrid":
            logger.info("%s: a polling blob trigger; devhost serves it from Event Grid events like the rest",
                        info.name)
        self._descriptions.append((info.name, f"blobTrigger on {binding['path']!r} (Event Grid)"))

    async def _start_change_feed(self, info: FunctionInfo) -> None:
        """Follow the container's change feed, checkpointing a lease per batch (devhost/cosmos_triggers.py)."""
        binding = info.trigger_binding
        container = resolve_settings(str(binding["containerName"]))
        database = resolve_settings(str(binding["databaseName"]))
        delay = binding.get("feedPollDelay")
        listener = ChangeFeedListener(
            function_name=info.name,
            connection=CosmosConnection.resolve(str(binding["connection"])),
            database=database,
            container=container,
            lease_container=resolve_settings(str(binding.get("leaseContainerName") or "leases")),
            invoke=self._invoker(info, f"New changes on container '{container}' at {dt.datetime.now(dt.UTC)}"),
            retry=RetryPolicy.from_setting(info.retry),
            lease_prefix=resolve_settings(str(binding.get("leaseContainerPrefix") or "")),
            create_lease_container=bool(binding.get("createLeaseContainerIfNotExists", False)),
            max_items=int(binding.get("maxItemsPerInvocation") or DEFAULT_MAX_ITEMS),
            poll_delay=int(delay) / 1000 if delay is not None else DEFAULT_POLL_DELAY,
            start_from_beginning=bool(binding.get("startFromBeginning", False)),
        )
        await listener.start()
        self._feeds[info.name] = listener
        self._descriptions.append((info.name, f"cosmosDBTrigger on {database}/{container}"))

    def change_feed(self, function_name: str) -> ChangeFeedListener:
        """The running change-feed listener of a function, to inspect it in tests."""
        return self._feeds[function_name]

    async def _start_timer(self, info: FunctionInfo) -> None:
        binding = info.trigger_binding
        expression = resolve_settings(str(binding["schedule"]))
        try:
            schedule: CronSchedule | IntervalSchedule = parse_schedule(expression)
        except ValueError as error:
            # The host reports the function as errored and runs the others.
            logger.error("%s: %s; the function is not loaded", info.name, error)
            return
        # The host monitors schedules of a minute or more so runs missed while it was down happen late.
        use_monitor = binding.get("useMonitor")
        if use_monitor is None:
            use_monitor = shortest_interval(schedule, self.clock()).total_seconds() >= 60
        monitor = None
        if use_monitor and self._storage:
            monitor = self._blob_service(self._storage).get_container_client(HOSTS_CONTAINER)
        listener = TimerListener(
            function_name=info.name,
            schedule=schedule,
            invoke=self._invoker(info, "Timer fired"),
            run_on_startup=bool(binding.get("runOnStartup", False)),
            monitor=monitor,
            clock=self.clock,
        )
        await listener.start()
        self._timers[info.name] = listener
        self._descriptions.append((info.name, f"timerTrigger {expression!r}"))

    async def stop(self) -> None:
        """Stop polling and timers, let in-flight work finish (bounded), close the server and clients."""
        grace = self.shutdown_timeout
        await asyncio.gather(
            *(listener.stop(grace) for listener in self._queues),
            *(source.stop(grace) for source in self._blob_sources.values()),
            self._admin.stop(grace),
            *(listener.stop(grace) for listener in self._timers.values()),
            *(listener.stop(grace) for listener in self._feeds.values()),
            self._http.stop(),
            return_exceptions=True,
        )
        self._queues.clear()
        self._blob_sources.clear()
        self._timers.clear()
        self._feeds.clear()
        # Sync handlers still running past the timeout cannot be interrupted; they are left to finish.
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.gather(
            *(client.close() for client in self._queue_services.values()),
            *(client.close() for client in self._blob_services.values()),
            return_exceptions=True,
        )
        self._queue_services.clear()
        self._blob_services.clear()
        logger.info("devhost stopped")

    async def run_forever(self) -> None:
        """Start, serve until SIGINT/SIGTERM (or cancellation), then stop cleanly."""
        await self.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(number, stopping.set)
                installed.append(number)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or a platform without signal handlers
        try:
            await stopping.wait()
        finally:
            for number in installed:
                loop.remove_signal_handler(number)
            await self.stop()

    async def __aenter__(self) -> FunctionHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
