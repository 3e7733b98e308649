"""Sites near a postcode, and a site's free slots: what the public booking journey reads."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from shared.domain.geo import bounding_box, haversine_km
from shared.domain.sites import Site
from shared.ports.common import Clock
from shared.ports.sites import PostcodeLocator, SiteStore
from shared.services.errors import FieldIssue, InvalidRequest, NotFound
from shared.services.refresh import RefreshingMap
from shared.services.sites.common import bounded, london_today, no_such_site
from shared.services.sites.index import NextAvailableDates, SiteIndex

DEFAULT_SLOT_DAYS: Final = 28
MAX_SLOT_DAYS: Final = 60
# Sessions open at most a year ahead (shared/services/sites/admin.py MAX_SESSION_DAYS_AHEAD): nothing later is listed.
SLOT_HORIZON_DAYS: Final = 366


@dataclass(frozen=True)
class SiteSearch:
    """The `limit` nearest sites within `radius_km` of a full postcode or a district, offering `product` if given."""

    postcode: str
    radius_km: float
    limit: int
    product: str | None = None


@dataclass(frozen=True)
class NearbySite:
    site: Site
    distance_km: float  # rounded to 10 m, as the public answer gives it
    next_available_date: dt.date | None


@dataclass(frozen=True)
class SlotRange:
    """London dates, both ends inclusive: from today, and for four weeks from the first, when not given."""

    first: dt.date | None = None
    last: dt.date | None = None
    product: str | None = None


@dataclass(frozen=True)
class FreeSlot:
    slot_id: str
    start: dt.datetime
    end: dt.datetime
    product: str
    remaining: int


class SiteSearchService:
    """Sites near a postcode, and a site's free slots: what the public booking journey reads."""

    def __init__(self, store: SiteStore, index: SiteIndex, availability: NextAvailableDates,
                 locator: PostcodeLocator, clock: Clock, slot_listing_seconds: float = 0.0) -> None:
        self._store = store
        self._index = index
        self._availability = availability
        self._locator = locator
        self._clock = clock
        # At a national peak thousands of people look at the same big centre's slots each second. A
        # listing a second or two old costs nothing in correctness (the booking's conditional patch
        # decides who gets a place) and saves one partition query per look.
        self._slot_listings: RefreshingMap[tuple[str, dt.date, dt.date, str | None], tuple[FreeSlot, ...]] = \
            RefreshingMap(slot_listing_seconds, clock, what="slot listing")

    async def search(self, query: SiteSearch) -> list[NearbySite]:
        """Nearest first (ties by site id), each with its next date with a free place."""
        located = await self._locator.locate(query.postcode)
        if located is None:
            raise NotFound("That postcode is not known", [FieldIssue("postcode", "not a known postcode")])
        lat, lon = located
        box = bounding_box(lat, lon, query.radius_km)
        nearby: list[tuple[float, str, Site]] = []
        for site in await self._index.sites():
            point = site.location
            if not site.in_national_search or (query.product and not site.offers(query.product)) \
                    or not box.contains(point.lat, point.lon):
                continue
            distance = haversine_km(lat, lon, point.lat, point.lon)
            if distance <= query.radius_km:
                nearby.append((distance, site.site_id, site))
        nearby.sort(key=lambda found: found[:2])
        nearest = nearby[:query.limit]
        now = self._clock.now()
        dates = await bounded(self._availability.next_date(site.site_id, query.product, now)
                              for _, _, site in nearest)
        return [NearbySite(site, round(distance, 2), date)
                for (distance, _, site), date in zip(nearest, dates, strict=True)]

    async def slots(self, site_id: str, wanted: SlotRange) -> tuple[FreeSlot, ...]:
        """The site's slots with a free place in the range, soonest first (none of a GP practice's: its
        clinics are listed to the people it invites, shared/services/gp/invitations.py)."""
        site = await self._index.find(site_id)
        if site is None or not site.in_national_search:
            raise no_such_site()
        today = london_today(self._clock)
        first = wanted.first or today
        if first > today + dt.timedelta(days=SLOT_HORIZON_DAYS):
            # No session opens that far ahead, and a date near 9999-12-31 must not overflow into a 500.
            raise InvalidRequest(f"from is more than {SLOT_HORIZON_DAYS} days ahead",
                                 [FieldIssue("from", f"at most {SLOT_HORIZON_DAYS} days from today")])
        last = wanted.last or first + dt.timedelta(days=DEFAULT_SLOT_DAYS)
        if last < first:
            raise InvalidRequest("to is before from", [FieldIssue("to", "must not be before from")])
        if (last - first).days > MAX_SLOT_DAYS:
            raise InvalidRequest(f"At most {MAX_SLOT_DAYS} days at a time",
                                 [FieldIssue("to", f"at most {MAX_SLOT_DAYS} days after from")])
        now = self._clock.now()
        return await self._slot_listings.get((site_id, first, last, wanted.product),
                                             lambda: self._free_slots(site_id, first, last, wanted.product, now))

    async def _free_slots(self, site_id: str, first: dt.date, last: dt.date, product: str | None,
                          now: dt.datetime) -> tuple[FreeSlot, ...]:
        found = await self._store.open_slots(site_id, first, last, product, now)
        return tuple(FreeSlot(s.slot_id, s.start, s.end, s.product, remaining=s.capacity - s.booked)
                     for s in sorted(found, key=lambda s: (s.start, s.slot_id)) if s.capacity > s.booked)
