"""host.json settings devhost honours, with the Functions host's defaults, and TimeSpan parsing."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

# What a listener calls to run its function once: it takes the trigger's binding value (an
# HttpRequest, a QueueMessage...) and returns the handler's result or raises its exception.
Invoke = Callable[[object], Awaitable[object]]

# App settings that override host.json values, by path (the host's own convention).
OVERRIDE_PREFIX = "AzureFunctionsJobHost__"

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2}(?:\.\d+)?))?$")


def parse_timespan(value: object, default: float) -> float:
    """Seconds in a .NET TimeSpan string ("00:00:02", "1.00:00:00", "00:00:00.250"); numbers are seconds."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            return (
                int(match["days"] or 0) * 86400
                + int(match["h"]) * 3600
                + int(match["m"]) * 60
                + float(match["s"] or 0)
            )
    raise ValueError(f"not a TimeSpan: {value!r}")


@dataclass(frozen=True)
class HttpSettings:
    """extensions.http."""

    route_prefix: str = "api"
    max_concurrent_requests: int = -1  # -1: unbounded, as the host's default
    max_outstanding_requests: int = -1
    # The largest request body the host reads (the app setting FUNCTIONS_REQUEST_BODY_SIZE_LIMIT; 100 MB).
    max_request_body_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True)
class QueueSettings:
    """extensions.queues; blob trigger retries use the same dequeue count and visibility timeout."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    base64: bool = True


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json that change how functions are run."""

    http: HttpSettings
    queues: QueueSettings
    blob_parallelism: int = 8
    function_timeout: float | None = 300.0

    @classmethod
    def from_json(cls, host_json: Mapping[str, Any]) -> HostConfig:
        extensions = host_json.get("extensions") or {}
        http = extensions.get("http") or {}
        queues = extensions.get("queues") or {}
        blobs = extensions.get("blobs") or {}

        prefix = http.get("routePrefix", "api")
        http_settings = HttpSettings(
            route_prefix=str(prefix if prefix is not None else "api").strip("/"),
            max_concurrent_requests=int(http.get("maxConcurrentRequests", -1)),
            max_outstanding_requests=int(http.get("maxOutstandingRequests", -1)),
            max_request_body_bytes=int(os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT") or 100 * 1024 * 1024),
        )

        # The host caps batchSize at 32, the most one Get Messages call returns.
        batch_size = max(1, min(32, int(queues.get("batchSize", 16))))
        encoding = str(queues.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
        queue_settings = QueueSettings(
            batch_size=batch_size,
            new_batch_threshold=max(0, int(queues.get("newBatchThreshold", batch_size // 2))),
            max_polling_interval=max(0.1, parse_timespan(queues.get("maxPollingInterval"), 60.0)),
            visibility_timeout=max(0.0, parse_timespan(queues.get("visibilityTimeout"), 0.0)),
            max_dequeue_count=max(1, int(queues.get("maxDequeueCount", 5))),
            base64=encoding == "base64",
        )

        timeout_value = host_json.get("functionTimeout", "00:05:00")
        timeout: float | None = None  # "-1" means unbounded
        if str(timeout_value).strip() != "-1":
            timeout = parse_timespan(timeout_value, 300.0)
        return cls(
            http=http_settings,
            queues=queue_settings,
            blob_parallelism=max(1, int(blobs.get("maxDegreeOfParallelism", 8))),
            function_timeout=timeout,
        )


def with_overrides(host_json: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """host.json with the app settings `AzureFunctionsJobHost__<path>` applied, as the Functions host does:
    `AzureFunctionsJobHost__extensions__queues__batchSize=32` sets extensions.queues.batchSize."""
    merged: dict[str, Any] = json.loads(json.dumps(host_json))
    for name, text in environ.items():
        if not name.lower().startswith(OVERRIDE_PREFIX.lower()):
            continue
        path = name[len(OVERRIDE_PREFIX):].split("__")
        node = merged
        for key in path[:-1]:
            existing = next((k for k in node if k.lower() == key.lower()), key)
            child = node.get(existing)
            if not isinstance(child, dict):
                child = node[existing] = {}
            node = child
        last = next((k for k in node if k.lower() == path[-1].lower()), path[-1])
        try:
            node[last] = json.loads(text)  # numbers and booleans as JSON; anything else as the text
        except ValueError:
            node[last] = text
    return merged


def resolve_connection(connection_name: str | None, fallback: str | None) -> str | None:
    """The storage connection string a trigger's `connection` names, looked up as the host does.

    The host tries the name itself and then with the "AzureWebJobs" prefix; devhost then falls back to
    the storage connection it was started with.
    """
    name = connection_name or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}"):
        value = os.environ.get(candidate)
        if value:
            return value
    return fallback
