"""The one place where Cosmos DB's transient failures become the ports' StoreUnavailableError.

Cosmos DB answers 429 when a partition's throughput is used up, 408 when a request times out and 503
when a replica is unavailable; the SDK retries some of them and then raises. `Clients.database()`
hands every adapter containers of `GuardedContainer`, whose requests raise `StoreUnavailableError`
(with the wait Cosmos DB asked for) instead, so services can give back what a saga took and the HTTP
edge answers 503 `TRY_AGAIN` with Retry-After, never a 500, and never knowing of azure.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.aio import ContainerProxy, DatabaseProxy
from azure.cosmos.exceptions import CosmosClientTimeoutError, CosmosHttpResponseError

from shared.ports.common import StoreUnavailableError

TRANSIENT_STATUSES = frozenset({408, 429, 503})


def unavailable(error: BaseException) -> StoreUnavailableError | None:
    """The StoreUnavailableError an SDK error stands for; None when it is not a transient failure."""
    if isinstance(error, CosmosHttpResponseError) and error.status_code in TRANSIENT_STATUSES:
        headers = getattr(error, "headers", None) or {}
        try:
            wait_ms = float(headers.get("x-ms-retry-after-ms") or 1000)
        except (TypeError, ValueError):
            wait_ms = 1000
        return StoreUnavailableError(math.ceil(wait_ms / 1000), error.status_code)
    if isinstance(error, CosmosClientTimeoutError):
        return StoreUnavailableError(1, 408)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):  # the connection failed or broke
        return StoreUnavailableError(1, None)
    return None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (CosmosHttpResponseError, CosmosClientTimeoutError, ServiceRequestError, ServiceResponseError) as error:
        replacement = unavailable(error)
        if replacement is None:
            raise
        raise replacement from None  # the SDK's message may quote a document; the status says enough


class _GuardedItems:
    """An SDK item pager whose pages raise StoreUnavailableError for transient failures."""

    def __init__(self, items: Any) -> None:
        self._items = items
        self._iterator: AsyncIterator[Any] | None = None

    def __aiter__(self) -> _GuardedItems:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._items.__aiter__()
        with _translated():
            return await self._iterator.__anext__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._items, name)


def _guard_pages(method: Callable[..., Any]) -> Callable[..., Any]:
    def paged(*args: Any, **kwargs: Any) -> Any:
        with _translated():
            return _GuardedItems(method(*args, **kwargs))

    return paged


class GuardedContainer(ContainerProxy):
    """A ContainerProxy whose every request raises StoreUnavailableError for 408, 429 and 503."""

    async def read(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().read(*args, **kwargs)

    async def create_item(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().create_item(*args, **kwargs)

    async def read_item(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().read_item(*args, **kwargs)

    async def read_items(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().read_items(*args, **kwargs)

    async def upsert_item(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().upsert_item(*args, **kwargs)

    async def replace_item(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().replace_item(*args, **kwargs)

    async def patch_item(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().patch_item(*args, **kwargs)

    async def delete_item(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().delete_item(*args, **kwargs)

    async def execute_item_batch(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().execute_item_batch(*args, **kwargs)

    def query_items(self, *args: Any, **kwargs: Any) -> Any:
        return _guard_pages(super().query_items)(*args, **kwargs)

    def read_all_items(self, *args: Any, **kwargs: Any) -> Any:
        return _guard_pages(super().read_all_items)(*args, **kwargs)

    def query_items_change_feed(self, *args: Any, **kwargs: Any) -> Any:
        return _guard_pages(super().query_items_change_feed)(*args, **kwargs)


class GuardedDatabase(DatabaseProxy):
    """A DatabaseProxy that hands out GuardedContainers."""

    def get_container_client(self, container: Any) -> GuardedContainer:
        name = container if isinstance(container, str) else (
            container.id if isinstance(container, ContainerProxy) else str(container["id"]))
        return GuardedContainer(self.client_connection, self.database_link, name)

    async def read(self, *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return await super().read(*args, **kwargs)
