"""A site's day list: who is booked for which time, for the staff at the door."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.domain.booking_record import Person
from shared.domain.staff import SITE_MANAGER, SITE_STAFF, Principal
from shared.ports.bookings import DayListItem, SiteAppointmentBook
from shared.ports.common import Clock
from shared.services.sites.access import StaffAccess
from shared.services.sites.common import bounded, london_today, no_such_site
from shared.services.sites.index import SiteIndex


@dataclass(frozen=True)
class DayListAppointment:
    reference: str
    dose: int
    slot_id: str
    start: dt.datetime
    product: str
    status: str
    name: str | None  # None when the booking could not be read


@dataclass(frozen=True)
class DayList:
    site_id: str
    date: dt.date
    appointments: tuple[DayListAppointment, ...]  # by start time, then name, then reference


class SiteAppointmentsService:
    """A site's day list: who is booked for which time, for the staff at the door."""

    def __init__(self, book: SiteAppointmentBook, index: SiteIndex, access: StaffAccess, clock: Clock) -> None:
        self._book = book
        self._index = index
        self._access = access
        self._clock = clock

    async def day_list(self, site_id: str, day: dt.date | None, actor: Principal) -> DayList:
        """The site's appointments on the London date (today when not given), with where each stands."""
        await self._access.require_site(actor, site_id, (SITE_STAFF, SITE_MANAGER))
        if await self._index.find(site_id) is None:
            raise no_such_site()
        day = day or london_today(self._clock)
        items = await self._book.day_list(site_id, day)
        appointments = await bounded(self._appointment(item) for item in items)
        appointments.sort(key=lambda a: (a.start, a.name or "", a.reference))
        return DayList(site_id, day, tuple(appointments))

    async def _appointment(self, item: DayListItem) -> DayListAppointment:
        person = item.person
        if person is None:
            # An appointment at a site other than the booking's home carries no person: read the booking.
            stored = await self._book.get(item.reference, item.home_site_id)
            person = stored.record.person if stored is not None else None
        return DayListAppointment(reference=item.reference, dose=item.dose, slot_id=item.slot_id, start=item.start,
                                  product=item.product, status=item.status, name=_full_name(person))


def _full_name(person: Person | None) -> str | None:
    if person is None:
        return None
    return " ".join(part for part in (person.given_name, person.family_name) if part) or None
