"""The audit trail: one entry per staff action (who, what, when, which site, which reference), and the
NationalAdmin's read of a site's day. Entries hold nothing clinical and no contact data (shared/domain/audit.py)."""

from __future__ import annotations

import datetime as dt
import logging

from shared.domain.audit import AuditAction, AuditEntry, audit_entry
from shared.domain.sites import london_date
from shared.domain.staff import Principal
from shared.ports.audit import AuditTrail
from shared.ports.common import Clock

log = logging.getLogger(__name__)


class AuditService:
    def __init__(self, trail: AuditTrail, clock: Clock) -> None:
        self._trail = trail
        self._clock = clock

    async def record(self, action: AuditAction, actor: Principal | str, *, site_id: str | None = None,
                     reference: str | None = None, once_per: str | None = None) -> None:
        """Write the entry for an action that has just happened (after it, so a refused action leaves none).

        Actions on bookings (check-in, vaccination, phone booking) are not written here but in the
        booking's recorded follow-up work, so a crash cannot lose them (shared/services/site_operations.py).
        """
        user = actor.user_id if isinstance(actor, Principal) else actor
        await self._trail.record(audit_entry(action, user, self._clock.now(), site_id=site_id, reference=reference,
                                             once_per=once_per))

    async def entries(self, site_id: str | None, day: dt.date | None) -> tuple[AuditEntry, ...]:
        """Every staff action of the London day (today when not given), at the site or, without one, anywhere."""
        return tuple(await self._trail.entries(site_id, day or london_date(self._clock.now())))


async def audited(audit: AuditService | None, action: AuditAction, actor: Principal | str, *,
                  site_id: str | None = None, reference: str | None = None) -> None:
    """Record the action when the service was given an audit trail (services built for tests may not be)."""
    if audit is not None:
        await audit.record(action, actor, site_id=site_id, reference=reference)
