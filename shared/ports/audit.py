"""Port of the audit trail: one entry per staff action, read by site and day."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from shared.domain.audit import AuditEntry


class AuditTrail(Protocol):
    async def record(self, entry: AuditEntry) -> None:
        """Write the entry; writing an entry with the same id again changes nothing."""
        ...

    async def entries(self, site_id: str | None, day: dt.date) -> list[AuditEntry]:
        """The entries of that Europe/London day at the site (without a site: every entry that day)."""
        ...
