"""Sites and their sessions and slots, site search, staff assignments and each site's day list."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from shared.api.principal import NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF, Principal
from shared.api.problems import FieldError, ProblemError
from shared.api.site_models import (
    DayListAnswer,
    DayListEntry,
    SessionCancelled,
    SessionOpened,
    SiteRegistered,
    SiteRegistration,
    SiteSearchAnswer,
    SiteSearchQuery,
    SiteSummary,
    SlotQuery,
    SlotsAnswer,
    SlotSummary,
    StaffAssignment,
)
from shared.domain.geo import bounding_box, haversine_km
from shared.domain.sites import Location, Session, Site
from shared.domain.slots import generate_slots, session_id_of
from shared.observability import redacted_traceback
from shared.ports import (
    Clock,
    IdempotencyKeys,
    PostcodeLocator,
    SessionBookingCanceller,
    SiteAppointmentBook,
    SiteStore,
    SlotState,
    StaffDirectory,
)
from shared.services.policy import PolicyService

log = logging.getLogger(__name__)
T = TypeVar("T")

LONDON: Final = ZoneInfo("Europe/London")
IDEMPOTENCY_WINDOW: Final = dt.timedelta(hours=24)
DEFAULT_SLOT_DAYS: Final = 28
MAX_SLOT_DAYS: Final = 60
# Sessions are planned weeks ahead, not years: a bound keeps a typo in the year from opening slots in 2062.
MAX_SESSION_DAYS_AHEAD: Final = 366
# Optimistic-concurrency rounds on one session-day ledger before telling the caller to try again.
_LEDGER_ATTEMPTS: Final = 5
# Concurrent store requests one search or day list makes (next available dates, booking reads).
_FAN_OUT: Final = 16
_USER_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# Fresh exceptions each time: raising one shared instance would keep growing its traceback.
def _no_site() -> ProblemError:
    return ProblemError(404, "NOT_FOUND", "Not found", "No such site")


def _key_reused() -> ProblemError:
    return ProblemError(409, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key reused",
                        "This Idempotency-Key was used with a different request")


Monotonic = Callable[[], float]


def london_today(clock: Clock) -> dt.date:
    """Today's date in England, which is what session dates and slot ranges mean."""
    return clock.now().astimezone(LONDON).date()


def body_hash(body: BaseModel) -> str:
    """The request as validated (so "ls1 4ap" and "LS1 4AP" are the same body), digested."""
    return hashlib.sha256(body.model_dump_json(by_alias=True).encode()).hexdigest()


async def _bounded(calls: Iterable[Awaitable[T]], limit: int = _FAN_OUT) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


class SiteIndex:
    """Every site, held in memory by each instance and re-read from the store once per refresh interval.

    A national list is a few thousand small records that change a few times a day, so keeping it whole
    makes a search cost no store request for the site list, and distances are computed in memory.
    """

    def __init__(self, store: SiteStore, refresh_seconds: float, monotonic: Monotonic = time.monotonic) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._sites: dict[str, Site] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def _stale(self) -> bool:
        return self._loaded_at is None or self._monotonic() - self._loaded_at >= self._refresh_seconds

    async def _fresh(self) -> dict[str, Site]:
        if self._stale():
            async with self._lock:
                if self._stale():  # another request may have refreshed while this one waited
                    await self._refresh()
        return self._sites

    async def _refresh(self) -> None:
        try:
            sites = await self._store.all_sites()
        except Exception as error:
            if self._loaded_at is None:
                raise
            # Serve the list we have (sites change rarely) and try again in a few seconds.
            log.warning("site index refresh failed; serving the previous list\n%s", redacted_traceback(error))
            self._loaded_at = self._monotonic() - self._refresh_seconds + 5
            return
        self._sites = {site.site_id: site for site in sites}
        self._loaded_at = self._monotonic()

    async def sites(self) -> list[Site]:
        return list((await self._fresh()).values())

    async def find(self, site_id: str) -> Site | None:
        """The site; one point read when this instance has not seen it yet (registered elsewhere since)."""
        found = (await self._fresh()).get(site_id)
        if found is None and (stored := await self._store.read_site(site_id)) is not None:
            found = stored.site
            self.add(found)
        return found

    def add(self, site: Site) -> None:
        self._sites[site.site_id] = site


class NextAvailableDates:
    """Each site's next date with a free place (per product), reused by one instance for a short while.

    Concurrent searches that need the same site share one query rather than each sending their own.
    """

    def __init__(self, store: SiteStore, ttl_seconds: float, monotonic: Monotonic = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str | None], tuple[float, asyncio.Task[dt.date | None]]] = {}

    async def next_date(self, site_id: str, product: str | None, now: dt.datetime) -> dt.date | None:
        key = (site_id, product)
        hit = self._cache.get(key)
        if hit is None or self._monotonic() - hit[0] >= self._ttl or _failed(hit[1]):
            task = asyncio.ensure_future(self._store.next_available_date(site_id, product, now))
            hit = (self._monotonic(), task)
            self._cache[key] = hit
        # Shielded: one caller giving up must not cancel the query the others are waiting for.
        return await asyncio.shield(hit[1])

    def forget(self, site_id: str) -> None:
        for key in [key for key in self._cache if key[0] == site_id]:
            del self._cache[key]


def _failed(task: asyncio.Task[dt.date | None]) -> bool:
    """A finished query that raised or was cancelled is not an answer to reuse."""
    return task.done() and (task.cancelled() or task.exception() is not None)


class StaffAccess:
    """Which sites a member of staff may act for: NationalAdmin everywhere, others where assigned."""

    def __init__(self, staff: StaffDirectory, index: SiteIndex, clock: Clock) -> None:
        self._staff = staff
        self._index = index
        self._clock = clock

    async def require_site(self, principal: Principal, site_id: str, roles: tuple[str, ...]) -> None:
        if principal.has_role(NATIONAL_ADMIN):
            return
        if not any(principal.has_role(role) for role in roles):
            raise ProblemError(403, "FORBIDDEN", "Not allowed", f"This route needs the role {' or '.join(roles)}")
        sites = await self._staff.sites_of(principal.user_id) if principal.user_id else None
        if not sites or site_id not in sites:
            raise ProblemError(403, "FORBIDDEN", "Not allowed", "You are not assigned to this site")

    async def assign(self, user_id: str, sites: list[str], by: Principal) -> StaffAssignment:
        self._check_user_id(user_id)
        known = await _bounded(self._index.find(site) for site in sites)
        unknown = [FieldError(field=f"sites[{i}]", message="no such site") for i, site in enumerate(known) if not site]
        if unknown:
            raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "Unknown sites", unknown)
        await self._staff.assign(user_id, tuple(sites), by.user_id, self._clock.now())
        return StaffAssignment(user_id=user_id, sites=sites)

    async def assignment(self, user_id: str) -> StaffAssignment:
        self._check_user_id(user_id)
        sites = await self._staff.sites_of(user_id)
        if sites is None:
            raise ProblemError(404, "NOT_FOUND", "Not found", "This user has no site assignment")
        return StaffAssignment(user_id=user_id, sites=sorted(sites))

    @staticmethod
    def _check_user_id(user_id: str) -> None:
        if not _USER_ID.match(user_id):
            raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "Not a user id",
                               [FieldError(field="userId", message="not a user id")])


class SiteAdminService:
    """Registering sites, and opening and cancelling their sessions (each session creates its slots)."""

    def __init__(self, store: SiteStore, index: SiteIndex, availability: NextAvailableDates, access: StaffAccess,
                 locator: PostcodeLocator, policies: PolicyService, keys: IdempotencyKeys,
                 canceller: SessionBookingCanceller, clock: Clock) -> None:
        self._store = store
        self._index = index
        self._availability = availability
        self._access = access
        self._locator = locator
        self._policies = policies
        self._keys = keys
        self._canceller = canceller
        self._clock = clock

    async def _check_key(self, scope: str, actor: Principal, key: str | None, body: BaseModel) -> str | None:
        """The key's record id, after refusing a key already used with another body (None without a key)."""
        if key is None:
            return None
        key_id = f"{scope}|{actor.user_id}|{key}"
        if await self._keys.claim(key_id, body_hash(body), self._clock.now(), IDEMPOTENCY_WINDOW) == "conflict":
            raise _key_reused()
        return hashlib.sha256(key_id.encode()).hexdigest()[:32]

    # ---- sites ---------------------------------------------------------------------------------

    async def register(self, request: SiteRegistration, actor: Principal,
                       idempotency_key: str | None) -> SiteRegistered:
        policy = (await self._policies.current()).policy
        unknown = [FieldError(field=f"products[{i}]", message="not a product of the campaign policy")
                   for i, code in enumerate(request.products) if policy.product(code) is None]
        if unknown:
            raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "Unknown products", unknown)
        location = request.location
        if location is None:
            found = await self._locator.locate(request.postcode)
            if found is None:
                raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid",
                                   "The postcode could not be located; give the location",
                                   [FieldError(field="postcode", message="could not be located")])
            location = Location(lat=found[0], lon=found[1])
        # The ODS code is the site id: unique per site, already what staff and GP systems call the site.
        site = Site(site_id=request.ods_code, name=request.name, type=request.type, ods_code=request.ods_code,
                    postcode=request.postcode, location=location, products=tuple(request.products),
                    age_bands=tuple(request.age_bands))
        registration_key = await self._check_key("sites", actor, idempotency_key, request)
        if not await self._store.create_site(site, registration_key, actor.user_id, self._clock.now()):
            existing = await self._store.read_site(site.site_id)
            # The same key's earlier attempt created it (the answer was lost): answer as the first time.
            if registration_key is None or existing is None or existing.registration_key != registration_key:
                raise ProblemError(409, "SITE_EXISTS", "Site exists", "A site with this ODS code is registered")
        self._index.add(site)
        return SiteRegistered(site_id=site.site_id)

    # ---- sessions ------------------------------------------------------------------------------

    async def open_session(self, site_id: str, session: Session, actor: Principal,
                           idempotency_key: str | None) -> SessionOpened:
        await self._access.require_site(actor, site_id, (SITE_MANAGER,))
        site = await self._index.find(site_id)
        if site is None:
            raise _no_site()
        if not site.offers(session.product):
            raise ProblemError(422, "PRODUCT_NOT_OFFERED", "Product not offered", "The site does not offer that "
                               "product", [FieldError(field="product", message="not a product this site offers")])
        today = london_today(self._clock)
        if session.date < today:
            raise _invalid_date("is in the past")
        if session.date > today + dt.timedelta(days=MAX_SESSION_DAYS_AHEAD):
            raise _invalid_date("is more than a year ahead")
        await self._check_key(f"sessions|{site_id}", actor, idempotency_key, session)
        session_id = session_id_of(site_id, session)
        slots = generate_slots(site_id, session)
        await self._claim_time(site_id, session_id, session)
        # From here every step is idempotent: the same request again finishes whatever a crash left undone.
        await self._store.put_session(site_id, session_id, session, "open", len(slots), actor.user_id,
                                      self._clock.now())
        await self._store.create_slots(slots)
        self._availability.forget(site_id)
        return SessionOpened(session_id=session_id, site_id=site_id, slot_count=len(slots))

    async def _claim_time(self, site_id: str, session_id: str, session: Session) -> None:
        """Enter the session in its day's ledger unless it overlaps another of the same product.

        The ledger is one document per site and day, replaced on its etag: two concurrent requests
        for overlapping sessions cannot both pass, which a query for overlapping sessions could not promise.
        """
        wanted = session.model_dump()
        for _ in range(_LEDGER_ATTEMPTS):
            day = await self._store.session_day(site_id, session.date)
            if (known := day.sessions.get(session_id)) is not None:
                if known.model_dump() == wanted:
                    return  # this very session, opened before: carry on idempotently
                raise _overlap(known)
            if (clash := next((s for s in day.sessions.values() if s.overlaps(session)), None)) is not None:
                raise _overlap(clash)
            if await self._store.save_session_day(site_id, session.date, {**day.sessions, session_id: session}, day):
                return
        raise ProblemError(409, "CONFLICT", "Changed meanwhile", "Sessions at this site changed meanwhile; try again")

    async def _release_time(self, site_id: str, session_id: str, day: dt.date) -> None:
        for _ in range(_LEDGER_ATTEMPTS):
            ledger = await self._store.session_day(site_id, day)
            if session_id not in ledger.sessions:
                return
            remaining = {sid: s for sid, s in ledger.sessions.items() if sid != session_id}
            if await self._store.save_session_day(site_id, day, remaining, ledger):
                return
        raise ProblemError(409, "CONFLICT", "Changed meanwhile", "Sessions at this site changed meanwhile; try again")

    async def cancel_session(self, site_id: str, session_id: str, cancel_bookings: bool,
                             actor: Principal) -> SessionCancelled:
        await self._access.require_site(actor, site_id, (SITE_MANAGER,))
        stored = await self._store.read_session(site_id, session_id)
        if stored is None:
            raise ProblemError(404, "NOT_FOUND", "Not found", "No such session at this site")
        slots = await self._store.session_slots(site_id, session_id)
        if stored.status == "cancelled":
            return SessionCancelled(session_id=session_id, slots_cancelled=len(slots), bookings_cancelled=0)
        cancelled_bookings = 0
        if not cancel_bookings:
            if any(slot.booked for slot in slots):
                raise _has_bookings(slots)
            # Close each slot only while nobody holds it: a booking landing meanwhile wins, and the
            # slots closed so far open again.
            closed = await _bounded(self._store.close_slot(site_id, s.slot_id, only_if_unbooked=True) for s in slots)
            if not all(closed):
                await _bounded(self._store.reopen_slot(site_id, s.slot_id) for s, ok in zip(slots, closed, strict=True)
                               if ok)
                raise _has_bookings(await self._store.session_slots(site_id, session_id))
        else:
            await _bounded(self._store.close_slot(site_id, s.slot_id, only_if_unbooked=False) for s in slots)
            # Read again once closed: nobody can take a place now, so this list of booked slots is final.
            booked = [s.slot_id for s in await self._store.session_slots(site_id, session_id) if s.booked]
            if booked:
                cancelled_bookings = await self._canceller.cancel_bookings_in_slots(booked)
        # The ledger is freed before the session is marked cancelled, so that a cancellation a crash
        # interrupted is finished by the same request again (a cancelled session answers at once).
        await self._release_time(site_id, session_id, stored.session.date)
        await self._store.put_session(site_id, session_id, stored.session, "cancelled", len(slots), actor.user_id,
                                      self._clock.now())
        self._availability.forget(site_id)
        return SessionCancelled(session_id=session_id, slots_cancelled=len(slots),
                                bookings_cancelled=cancelled_bookings)


def _invalid_date(message: str) -> ProblemError:
    return ProblemError(422, "VALIDATION_FAILED", "The request is not valid", f"The date {message}",
                        [FieldError(field="date", message=message)])


def _overlap(other: Session) -> ProblemError:
    return ProblemError(409, "SESSION_OVERLAPS", "Session overlaps",
                        f"A {other.product} session from {other.start:%H:%M} to {other.end:%H:%M} that day overlaps it")


def _has_bookings(slots: list[SlotState]) -> ProblemError:
    places = sum(slot.booked for slot in slots)
    return ProblemError(409, "SESSION_HAS_BOOKINGS", "Session has bookings",
                        f"{places} place(s) in this session are booked; send cancelBookings: true to cancel "
                        "those bookings with notice")


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
        self._slot_listing_ttl = dt.timedelta(seconds=slot_listing_seconds)
        self._slot_listings: dict[tuple[str, dt.date, dt.date, str | None], tuple[dt.datetime, SlotsAnswer]] = {}

    async def search(self, query: SiteSearchQuery) -> SiteSearchAnswer:
        located = await self._locator.locate(query.postcode)
        if located is None:
            raise ProblemError(404, "NOT_FOUND", "Not found", "That postcode is not known",
                               [FieldError(field="postcode", message="not a known postcode")])
        lat, lon = located
        box = bounding_box(lat, lon, query.radius_km)
        nearby: list[tuple[float, str, Site]] = []
        for site in await self._index.sites():
            point = site.location
            if (query.product and not site.offers(query.product)) or not box.contains(point.lat, point.lon):
                continue
            distance = haversine_km(lat, lon, point.lat, point.lon)
            if distance <= query.radius_km:
                nearby.append((distance, site.site_id, site))
        nearby.sort(key=lambda found: found[:2])
        nearest = nearby[:query.limit]
        now = self._clock.now()
        dates = await _bounded(self._availability.next_date(site.site_id, query.product, now)
                               for _, _, site in nearest)
        return SiteSearchAnswer(sites=[
            SiteSummary(site_id=site.site_id, name=site.name, type=site.type, distance_km=round(distance, 2),
                        products=list(site.products), next_available_date=date, postcode=site.postcode)
            for (distance, _, site), date in zip(nearest, dates, strict=True)])

    async def slots(self, site_id: str, query: SlotQuery) -> SlotsAnswer:
        if await self._index.find(site_id) is None:
            raise _no_site()
        first = query.from_ or london_today(self._clock)
        last = query.to or first + dt.timedelta(days=DEFAULT_SLOT_DAYS)
        if last < first:
            raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "to is before from",
                               [FieldError(field="to", message="must not be before from")])
        if (last - first).days > MAX_SLOT_DAYS:
            raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid",
                               f"At most {MAX_SLOT_DAYS} days at a time",
                               [FieldError(field="to", message=f"at most {MAX_SLOT_DAYS} days after from")])
        now = self._clock.now()
        key = (site_id, first, last, query.product)
        cached = self._slot_listings.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        found = await self._store.open_slots(site_id, first, last, query.product, now)
        answer = SlotsAnswer(slots=[
            SlotSummary(slot_id=s.slot_id, start=s.start, end=s.end, product=s.product, remaining=s.capacity - s.booked)
            for s in sorted(found, key=lambda s: (s.start, s.slot_id)) if s.capacity > s.booked])
        if self._slot_listing_ttl:
            if len(self._slot_listings) > 10_000:
                self._slot_listings.clear()  # bounded: a burst of distinct ranges cannot grow it without end
            self._slot_listings[key] = (now + self._slot_listing_ttl, answer)
        return answer


class SiteAppointmentsService:
    """A site's day list: who is booked for which time, for the staff at the door."""

    def __init__(self, book: SiteAppointmentBook, index: SiteIndex, access: StaffAccess, clock: Clock) -> None:
        self._book = book
        self._index = index
        self._access = access
        self._clock = clock

    async def day_list(self, site_id: str, day: dt.date | None, actor: Principal) -> DayListAnswer:
        await self._access.require_site(actor, site_id, (SITE_STAFF, SITE_MANAGER))
        if await self._index.find(site_id) is None:
            raise _no_site()
        day = day or london_today(self._clock)
        docs = await self._book.day_list(site_id, day)
        entries = await _bounded(self._entry(doc) for doc in docs)
        entries.sort(key=lambda e: (e.start, e.name or "", e.reference))
        return DayListAnswer(site_id=site_id, date=day, appointments=entries)

    async def _entry(self, doc: dict[str, object]) -> DayListEntry:
        name = None
        booking = doc.get("booking")
        if doc.get("type") == "booking" and isinstance(booking, dict):
            name = _full_name(booking.get("person"))
        elif doc.get("type") == "appointment":
            # An appointment at a site other than the booking's home carries no person: read the booking.
            stored = await self._book.get(str(doc.get("reference")), str(doc.get("homeSiteId")))
            if stored is not None:
                name = f"{stored.record.person.given_name} {stored.record.person.family_name}"
        return DayListEntry.model_validate({
            "reference": doc.get("reference"), "dose": doc.get("dose"), "slotId": doc.get("slotId"),
            "start": doc.get("start"), "product": doc.get("product"), "status": doc.get("status"), "name": name})


def _full_name(person: object) -> str | None:
    if not isinstance(person, dict):
        return None
    parts = [str(person[part]) for part in ("givenName", "familyName") if person.get(part)]
    return " ".join(parts) or None
