"""The campaign policy: read through a short per-instance cache, replaced by NationalAdmin."""

from __future__ import annotations

from shared.domain.audit import AuditAction
from shared.domain.policy import DEFAULT_POLICY, CampaignPolicy
from shared.ports.common import Clock, VersionConflictError
from shared.ports.policy import PolicyStore, StoredPolicy
from shared.services.audit import AuditService, audited
from shared.services.refresh import Refreshing

SHIPPED_DEFAULT = StoredPolicy(policy=DEFAULT_POLICY, version=0, updated_at=None)


class PolicyService:
    """Every instance re-reads the stored policy at most every `refresh_seconds`.

    That bounds how long a change takes to reach every instance while costing one read per
    instance per interval, not one per request.
    """

    def __init__(self, store: PolicyStore, clock: Clock, refresh_seconds: float,
                 audit: AuditService | None = None) -> None:
        self._audit = audit
        self._store = store
        self._clock = clock
        self._cached = Refreshing(self._load, refresh_seconds, clock, what="campaign policy")

    async def _load(self) -> StoredPolicy:
        return await self._store.load() or SHIPPED_DEFAULT

    async def current(self) -> StoredPolicy:
        return await self._cached.get()

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
        self._cached.put(saved)
        await audited(self._audit, AuditAction.POLICY_CHANGED, updated_by, reference=f"policy-v{saved.version}")
        return saved
