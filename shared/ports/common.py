"""Ports every area uses: the clock, dependency probes, and the conflict a conditional write can lose."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """The time now, in UTC; injected so that services and tests control it."""

    def now(self) -> dt.datetime: ...


class DependencyProbe(Protocol):
    """Checks that one store the app depends on answers."""

    @property
    def name(self) -> str: ...

    async def check(self) -> None:
        """Return when the dependency answers; raise otherwise."""
        ...


class VersionConflictError(Exception):
    """A conditional write lost to a concurrent one."""


class StoreUnavailableError(Exception):
    """A store is busy, timed out or unavailable for a moment (Cosmos DB 429, 408 or 503): try again shortly.

    Adapters raise it in place of their SDK's errors (shared/adapters/cosmos_errors.py) so that services
    can give back what they took and the HTTP edge can answer 503 with Retry-After. A timed-out write may
    still have been applied: whoever catches this must not assume it was not.
    """

    def __init__(self, retry_after: int = 1, status: int | None = None) -> None:
        super().__init__(f"store unavailable (status {status}); retry after {retry_after} s")
        self.retry_after = max(1, retry_after)
        self.status = status
