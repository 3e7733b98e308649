"""Every site, held in memory by each instance, and each site's next available date, cached briefly."""

from __future__ import annotations

import datetime as dt

from shared.domain.sites import Site
from shared.ports.common import Clock
from shared.ports.sites import SiteStore
from shared.services.refresh import Refreshing, RefreshingMap


class SiteIndex:
    """Every site, held in memory by each instance and re-read from the store once per refresh interval.

    A national list is a few thousand small records that change a few times a day, so keeping it whole
    makes a search cost no store request for the site list, and distances are computed in memory.
    When a refresh fails, the previous list is served (sites change rarely) and the read tried again soon.
    """

    def __init__(self, store: SiteStore, refresh_seconds: float, clock: Clock) -> None:
        self._store = store
        self._sites: Refreshing[dict[str, Site]] = Refreshing(self._load, refresh_seconds, clock,
                                                              what="site index")

    async def _load(self) -> dict[str, Site]:
        return {site.site_id: site for site in await self._store.all_sites()}

    async def sites(self) -> list[Site]:
        return list((await self._sites.get()).values())

    async def find(self, site_id: str) -> Site | None:
        """The site; one point read when this instance has not seen it yet (registered elsewhere since)."""
        found = (await self._sites.get()).get(site_id)
        if found is None and (stored := await self._store.read_site(site_id)) is not None:
            found = stored.site
            self.add(found)
        return found

    def add(self, site: Site) -> None:
        """A site this instance registered or read, listed at once rather than after the next refresh.

        Before the first read there is nothing to add to: that read will list it from the store.
        """
        if (sites := self._sites.current) is not None:
            sites[site.site_id] = site


class NextAvailableDates:
    """Each site's next date with a free place (per product), reused by one instance for a short while.

    Concurrent searches that need the same site share one query rather than each sending their own.
    """

    def __init__(self, store: SiteStore, ttl_seconds: float, clock: Clock) -> None:
        self._store = store
        self._dates: RefreshingMap[tuple[str, str | None], dt.date | None] = RefreshingMap(
            ttl_seconds, clock, what="next available date")

    async def next_date(self, site_id: str, product: str | None, now: dt.datetime) -> dt.date | None:
        return await self._dates.get((site_id, product),
                                     lambda: self._store.next_available_date(site_id, product, now))

    def forget(self, site_id: str) -> None:
        """After a session opened or closed here, the site's next search asks the store again."""
        self._dates.forget(lambda key: key[0] == site_id)
