"""Which sites each member of staff may act for, and NationalAdmin's assignments of staff to sites."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from shared.domain.audit import AuditAction
from shared.domain.staff import NATIONAL_ADMIN, Principal
from shared.ports.common import Clock
from shared.ports.sites import StaffDirectory
from shared.services.audit import AuditService, audited
from shared.services.errors import FieldIssue, Forbidden, InvalidRequest, NotFound
from shared.services.sites.common import bounded
from shared.services.sites.index import SiteIndex

_USER_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class StaffSites:
    """The sites a member of staff may act for."""

    user_id: str
    sites: tuple[str, ...]


class StaffAccess:
    """Which sites a member of staff may act for: NationalAdmin everywhere, others where assigned."""

    def __init__(self, staff: StaffDirectory, index: SiteIndex, clock: Clock,
                 audit: AuditService | None = None) -> None:
        self._audit = audit
        self._staff = staff
        self._index = index
        self._clock = clock

    async def require_site(self, principal: Principal, site_id: str, roles: tuple[str, ...]) -> None:
        if principal.has_role(NATIONAL_ADMIN):
            return
        if not any(principal.has_role(role) for role in roles):
            raise Forbidden(f"This route needs the role {' or '.join(roles)}")
        sites = await self._staff.sites_of(principal.user_id) if principal.user_id else None
        if not sites or site_id not in sites:
            raise Forbidden("You are not assigned to this site")

    async def assigned_sites(self, principal: Principal) -> frozenset[str] | None:
        """The sites the member of staff may act for (one read); None for NationalAdmin: every site."""
        if principal.has_role(NATIONAL_ADMIN):
            return None
        return (await self._staff.sites_of(principal.user_id) if principal.user_id else None) or frozenset()

    async def assign(self, user_id: str, sites: tuple[str, ...], by: Principal) -> StaffSites:
        """Replace the user's sites with these (in the order given); every one must be a registered site."""
        self._check_user_id(user_id)
        known = await bounded(self._index.find(site) for site in sites)
        unknown = [FieldIssue(f"sites[{i}]", "no such site") for i, site in enumerate(known) if not site]
        if unknown:
            raise InvalidRequest("Unknown sites", unknown)
        await self._staff.assign(user_id, sites, by.user_id, self._clock.now())
        for site_id in sites or (None,):
            await audited(self._audit, AuditAction.STAFF_ASSIGNED, by, site_id=site_id, reference=user_id)
        return StaffSites(user_id, sites)

    async def assignment(self, user_id: str) -> StaffSites:
        self._check_user_id(user_id)
        sites = await self._staff.sites_of(user_id)
        if sites is None:
            raise NotFound("This user has no site assignment")
        return StaffSites(user_id, tuple(sorted(sites)))

    @staticmethod
    def _check_user_id(user_id: str) -> None:
        if not _USER_ID.match(user_id):
            raise InvalidRequest("Not a user id", [FieldIssue("userId", "not a user id")])
