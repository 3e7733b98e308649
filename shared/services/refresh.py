"""Values an instance keeps in memory and re-reads now and then: the policy, the site index, slot listings.

One helper, one time source (the injected Clock) and one set of rules for all of them:
- a value is re-read at most every `seconds`; callers arriving while it loads share that one load;
- a caller that gives up (cancelled) never cancels the load the others wait for;
- when a re-read fails, the last value is served and the read is tried again after `retry_seconds`;
  with no value yet, the failure is the caller's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from shared.observability import redacted_traceback
from shared.ports.common import Clock

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

RETRY_SECONDS = 5.0


class Refreshing(Generic[T]):
    """One value, re-read from `load` at most every `seconds`."""

    def __init__(self, load: Callable[[], Awaitable[T]], seconds: float, clock: Clock, *, what: str = "value",
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self._load = load
        self._interval = dt.timedelta(seconds=seconds)
        self._retry = dt.timedelta(seconds=min(retry_seconds, seconds) if seconds > 0 else 0)
        self._clock = clock
        self._what = what
        self._has_value = False
        self._value: T | None = None
        self._good_until: dt.datetime | None = None
        self._loading: asyncio.Future[T] | None = None

    def fresh(self) -> bool:
        return self._has_value and self._good_until is not None and self._clock.now() < self._good_until

    async def get(self) -> T:
        if self.fresh():
            return self._value  # type: ignore[return-value]
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._reload())
        # Shielded: one caller giving up must not cancel the read the others are waiting for.
        return await asyncio.shield(self._loading)

    async def _reload(self) -> T:
        try:
            value = await self._load()
        except Exception as error:
            if not self._has_value:
                raise
            log.warning("%s refresh failed; serving the previous one\n%s", self._what, redacted_traceback(error))
            self._good_until = self._clock.now() + self._retry
            return self._value  # type: ignore[return-value]
        self.put(value)
        return value

    def reads_with(self, load: Callable[[], Awaitable[T]]) -> None:
        self._load = load

    def put(self, value: T) -> None:
        """This instance's own change (or a value it read some other way), served at once."""
        self._value, self._has_value = value, True
        self._good_until = self._clock.now() + self._interval

    @property
    def current(self) -> T | None:
        """The value held now, fresh or not, without reading; None before the first read."""
        return self._value


class RefreshingMap(Generic[K, T]):
    """Many values by key, each refreshed as `Refreshing` does; at most `max_keys` kept."""

    def __init__(self, seconds: float, clock: Clock, *, what: str = "value", max_keys: int = 10_000) -> None:
        self._seconds = seconds
        self._clock = clock
        self._what = what
        self._max_keys = max_keys
        self._entries: dict[K, Refreshing[T]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[T]]) -> T:
        if self._seconds <= 0:
            return await load()  # caching off: every caller reads
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                # Bounded: a burst of distinct keys cannot grow it without end; drop what is stale first.
                self._entries = {k: e for k, e in self._entries.items() if e.fresh()}
                if len(self._entries) >= self._max_keys:
                    self._entries.clear()
            entry = Refreshing(load, self._seconds, self._clock, what=self._what)
            self._entries[key] = entry
        else:
            entry.reads_with(load)  # the latest caller's way to read it (it may carry a newer `now`)
        return await entry.get()

    def forget(self, matches: Callable[[K], bool]) -> None:
        """Drop the keys that match, so the next caller reads afresh (after a change on this instance)."""
        for key in [key for key in self._entries if matches(key)]:
            del self._entries[key]
