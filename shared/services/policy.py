"""The campaign policy: read through a short per-instance cache, replaced by NationalAdmin."""

from __future__ import annotations

import asyncio
import datetime as dt

from shared.domain.policy import DEFAULT_POLICY, CampaignPolicy
from shared.ports import Clock, PolicyStore, StoredPolicy, VersionConflictError

SHIPPED_DEFAULT = StoredPolicy(policy=DEFAULT_POLICY, version=0, updated_at=None)


class PolicyService:
    """Every instance re-reads the stored policy at most every `refresh_seconds`.

    That bounds how long a change takes to reach every instance while costing one read per
    instance per interval, not one per request.
    """

    def __init__(self, store: PolicyStore, clock: Clock, refresh_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._refresh = dt.timedelta(seconds=refresh_seconds)
        self._cached: StoredPolicy | None = None
        self._read_at: dt.datetime | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, now: dt.datetime) -> bool:
        return self._cached is not None and self._read_at is not None and now - self._read_at < self._refresh

    async def current(self) -> StoredPolicy:
        if self._fresh(self._clock.now()):
            assert self._cached is not None
            return self._cached
        async with self._lock:  # one read per refresh however many requests are waiting
            now = self._clock.now()
            if not self._fresh(now):
                self._cached = await self._store.load() or SHIPPED_DEFAULT
                self._read_at = now
            assert self._cached is not None
            return self._cached

    async def replace(
        self, policy: CampaignPolicy, updated_by: str, expected_version: int | None = None
    ) -> StoredPolicy:
        """Store the policy as the next version; raises VersionConflictError on a concurrent change.

        With `expected_version`, also when the stored version is not the one the caller based its edit on.
        """
        previous = await self._store.load()
        if expected_version is not None and expected_version != (previous.version if previous else 0):
            raise VersionConflictError
        saved = await self._store.save(policy, previous, self._clock.now(), updated_by)
        self._cached, self._read_at = saved, self._clock.now()
        return saved
