"""Ports of the campaign policy: the stored document and its version."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from shared.domain.policy import CampaignPolicy


@dataclass(frozen=True)
class StoredPolicy:
    """The campaign policy with the version that every instance converges on."""

    policy: CampaignPolicy
    version: int
    updated_at: dt.datetime | None
    etag: str | None = None


class PolicyStore(Protocol):
    async def load(self) -> StoredPolicy | None: ...

    async def save(self, policy: CampaignPolicy, previous: StoredPolicy | None, now: dt.datetime,
                   updated_by: str) -> StoredPolicy:
        """Store the next version; raises VersionConflictError if another writer got there first."""
        ...
