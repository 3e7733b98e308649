"""Staff: the signed-in member of staff and the roles that decide what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

NATIONAL_ADMIN: Final = "NationalAdmin"
SITE_MANAGER: Final = "SiteManager"
SITE_STAFF: Final = "SiteStaff"
GP_PRACTICE: Final = "GpPractice"
# A contact-centre agent who books for people by phone (POST /api/admin/bookings), at any site.
BOOKING_AGENT: Final = "BookingAgent"
STAFF_ROLES: Final = frozenset({NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF, GP_PRACTICE, BOOKING_AGENT})


@dataclass(frozen=True)
class Principal:
    """A signed-in member of staff: who, and which roles the identity provider gave them."""

    user_id: str
    name: str
    roles: frozenset[str]

    def has_role(self, role: str) -> bool:
        return role in self.roles
