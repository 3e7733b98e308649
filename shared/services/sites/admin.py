"""Registering sites, and opening and cancelling their sessions (each session creates its slots)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Final, Protocol

from shared.domain.audit import AuditAction
from shared.domain.sites import AgeBand, Location, Session, Site, SiteType
from shared.domain.slots import generate_slots, session_id_of
from shared.domain.staff import SITE_MANAGER, SITE_STAFF, Principal
from shared.ports.common import Clock
from shared.ports.sites import IdempotencyKeys, PostcodeLocator, SessionBookingCanceller, SiteStore, SlotState
from shared.services.audit import AuditService, audited
from shared.services.errors import (
    ChangedMeanwhile,
    FieldIssue,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    ProductNotOffered,
    SessionHasBookings,
    SessionOverlaps,
    SiteExists,
)
from shared.services.idempotency import command_digest
from shared.services.policy import PolicyService
from shared.services.sites.access import StaffAccess
from shared.services.sites.common import bounded, london_today, no_such_site
from shared.services.sites.index import NextAvailableDates, SiteIndex


class SessionPlaces(Protocol):
    """The operator dashboard's count of places open (shared/services/dashboard.py); never raises."""

    async def session_changed(self, site_postcode: str, session: Session, opened: bool) -> None: ...


IDEMPOTENCY_WINDOW: Final = dt.timedelta(hours=24)
# Sessions are planned weeks ahead, not years: a bound keeps a typo in the year from opening slots in 2062.
MAX_SESSION_DAYS_AHEAD: Final = 366
# Optimistic-concurrency rounds on one session-day ledger before telling the caller to try again.
_LEDGER_ATTEMPTS: Final = 5


@dataclass(frozen=True)
class RegisterSite:
    """A new site; its location is looked up from the postcode when not given."""

    name: str
    type: SiteType
    ods_code: str
    postcode: str
    products: tuple[str, ...]
    age_bands: tuple[AgeBand, ...]
    location: Location | None = None


@dataclass(frozen=True)
class RegisteredSite:
    site_id: str


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    site_id: str
    slot_count: int


@dataclass(frozen=True)
class CancelledSession:
    session_id: str
    slots_cancelled: int
    bookings_cancelled: int


@dataclass(frozen=True)
class ListedSession:
    """An open session of a day, with its places: what the staff screens list to cancel from."""

    session_id: str
    session: Session
    places: int
    booked: int


class SiteAdminService:
    """Registering sites, and opening and cancelling their sessions (each session creates its slots)."""

    def __init__(self, store: SiteStore, index: SiteIndex, availability: NextAvailableDates, access: StaffAccess,
                 locator: PostcodeLocator, policies: PolicyService, keys: IdempotencyKeys,
                 canceller: SessionBookingCanceller, clock: Clock, audit: AuditService | None = None,
                 places: SessionPlaces | None = None) -> None:
        self._audit = audit
        self._places = places
        self._store = store
        self._index = index
        self._availability = availability
        self._access = access
        self._locator = locator
        self._policies = policies
        self._keys = keys
        self._canceller = canceller
        self._clock = clock

    async def _check_key(self, scope: str, actor: Principal, key: str | None, command: object) -> str | None:
        """The key's record id, after refusing a key already used with another command (None without a key)."""
        if key is None:
            return None
        key_id = f"{scope}|{actor.user_id}|{key}"
        if await self._keys.claim(key_id, command_digest(command), self._clock.now(), IDEMPOTENCY_WINDOW) \
                == "conflict":
            raise IdempotencyKeyReused()
        return hashlib.sha256(key_id.encode()).hexdigest()[:32]

    # ---- sites ---------------------------------------------------------------------------------

    async def register(self, command: RegisterSite, actor: Principal, idempotency_key: str | None) -> RegisteredSite:
        policy = (await self._policies.current()).policy
        unknown = [FieldIssue(f"products[{i}]", "not a product of the campaign policy")
                   for i, code in enumerate(command.products) if policy.product(code) is None]
        if unknown:
            raise InvalidRequest("Unknown products", unknown)
        location = command.location
        if location is None:
            found = await self._locator.locate(command.postcode)
            if found is None:
                raise InvalidRequest("The postcode could not be located; give the location",
                                     [FieldIssue("postcode", "could not be located")])
            location = Location(lat=found[0], lon=found[1])
        # The ODS code is the site id: unique per site, already what staff and GP systems call the site.
        site = Site(site_id=command.ods_code, name=command.name, type=command.type, ods_code=command.ods_code,
                    postcode=command.postcode, location=location, products=command.products,
                    age_bands=command.age_bands)
        registration_key = await self._check_key("sites", actor, idempotency_key, command)
        if not await self._store.create_site(site, registration_key, actor.user_id, self._clock.now()):
            existing = await self._store.read_site(site.site_id)
            # The same key's earlier attempt created it (the answer was lost): answer as the first time.
            if registration_key is None or existing is None or existing.registration_key != registration_key:
                raise SiteExists()
        self._index.add(site)
        await audited(self._audit, AuditAction.SITE_REGISTERED, actor, site_id=site.site_id, reference=site.site_id)
        return RegisteredSite(site.site_id)

    # ---- sessions ------------------------------------------------------------------------------

    async def open_session(self, site_id: str, session: Session, actor: Principal,
                           idempotency_key: str | None) -> OpenedSession:
        await self._access.require_site(actor, site_id, (SITE_MANAGER,))
        site = await self._index.find(site_id)
        if site is None:
            raise no_such_site()
        if not site.offers(session.product):
            raise ProductNotOffered()
        today = london_today(self._clock)
        if session.date < today:
            raise _invalid_date("is in the past")
        if session.date > today + dt.timedelta(days=MAX_SESSION_DAYS_AHEAD):
            raise _invalid_date("is more than a year ahead")
        await self._check_key(f"sessions|{site_id}", actor, idempotency_key, session)
        session_id = session_id_of(site_id, session)
        slots = generate_slots(site_id, session)
        newly_claimed = await self._claim_time(site_id, session_id, session)
        # From here every step is idempotent: the same request again finishes whatever a crash left undone.
        await self._store.put_session(site_id, session_id, session, "open", len(slots), actor.user_id,
                                      self._clock.now())
        await self._store.create_slots(slots)
        self._availability.forget(site_id)
        # Counted once: a retry of the same request finds the session in its ledger already.
        if newly_claimed and self._places is not None:
            await self._places.session_changed(site.postcode, session, opened=True)
        await audited(self._audit, AuditAction.SESSION_OPENED, actor, site_id=site_id, reference=session_id)
        return OpenedSession(session_id, site_id, len(slots))

    async def sessions_on(self, site_id: str, day: dt.date | None,
                          actor: Principal) -> tuple[dt.date, list[ListedSession]]:
        """The site's open sessions on `day` (default today, London), from its day ledger (one read) and each
        session's slots (one single-partition query each)."""
        await self._access.require_site(actor, site_id, (SITE_MANAGER, SITE_STAFF))
        if await self._index.find(site_id) is None:
            raise no_such_site()
        day = day or london_today(self._clock)
        ledger = await self._store.session_day(site_id, day)
        listed = []
        for session_id, session in sorted(ledger.sessions.items(), key=lambda item: (item[1].start, item[0])):
            slots = [slot for slot in await self._store.session_slots(site_id, session_id) if slot.status == "open"]
            listed.append(ListedSession(session_id, session, sum(slot.capacity for slot in slots),
                                        sum(slot.booked for slot in slots)))
        return day, listed

    async def _claim_time(self, site_id: str, session_id: str, session: Session) -> bool:
        """Enter the session in its day's ledger unless it overlaps another of the same product.

        The ledger is one document per site and day, replaced on its etag: two concurrent requests
        for overlapping sessions cannot both pass, which a query for overlapping sessions could not promise.
        """
        wanted = session.model_dump()
        for _ in range(_LEDGER_ATTEMPTS):
            day = await self._store.session_day(site_id, session.date)
            if (known := day.sessions.get(session_id)) is not None:
                if known.model_dump() == wanted:
                    return False  # this very session, opened before: carry on idempotently
                raise _overlap(known)
            if (clash := next((s for s in day.sessions.values() if s.overlaps(session)), None)) is not None:
                raise _overlap(clash)
            if await self._store.save_session_day(site_id, session.date, {**day.sessions, session_id: session}, day):
                return True
        raise _sessions_changed()

    async def _release_time(self, site_id: str, session_id: str, day: dt.date) -> bool:
        for _ in range(_LEDGER_ATTEMPTS):
            ledger = await self._store.session_day(site_id, day)
            if session_id not in ledger.sessions:
                return False
            remaining = {sid: s for sid, s in ledger.sessions.items() if sid != session_id}
            if await self._store.save_session_day(site_id, day, remaining, ledger):
                return True
        raise _sessions_changed()

    async def cancel_session(self, site_id: str, session_id: str, cancel_bookings: bool,
                             actor: Principal) -> CancelledSession:
        await self._access.require_site(actor, site_id, (SITE_MANAGER,))
        stored = await self._store.read_session(site_id, session_id)
        if stored is None:
            raise NotFound("No such session at this site")
        slots = await self._store.session_slots(site_id, session_id)
        if stored.status == "cancelled":
            return CancelledSession(session_id, slots_cancelled=len(slots), bookings_cancelled=0)
        cancelled_bookings = 0
        if not cancel_bookings:
            if any(slot.booked for slot in slots):
                raise _has_bookings(slots)
            # Close each slot only while nobody holds it: a booking landing meanwhile wins, and the
            # slots closed so far open again.
            closed = await bounded(self._store.close_slot(site_id, s.slot_id, only_if_unbooked=True) for s in slots)
            if not all(closed):
                await bounded(self._store.reopen_slot(site_id, s.slot_id) for s, ok in zip(slots, closed, strict=True)
                              if ok)
                raise _has_bookings(await self._store.session_slots(site_id, session_id))
        else:
            await bounded(self._store.close_slot(site_id, s.slot_id, only_if_unbooked=False) for s in slots)
            # Read again once closed: nobody can take a place now, so this list of booked slots is final.
            booked = [s.slot_id for s in await self._store.session_slots(site_id, session_id) if s.booked]
            if booked:
                cancelled_bookings = await self._canceller.cancel_bookings_in_slots(booked)
        # The ledger is freed before the session is marked cancelled, so that a cancellation a crash
        # interrupted is finished by the same request again (a cancelled session answers at once).
        released = await self._release_time(site_id, session_id, stored.session.date)
        if released and self._places is not None and (site := await self._index.find(site_id)) is not None:
            await self._places.session_changed(site.postcode, stored.session, opened=False)
        await self._store.put_session(site_id, session_id, stored.session, "cancelled", len(slots), actor.user_id,
                                      self._clock.now())
        self._availability.forget(site_id)
        await audited(self._audit, AuditAction.SESSION_CANCELLED, actor, site_id=site_id, reference=session_id)
        return CancelledSession(session_id, slots_cancelled=len(slots), bookings_cancelled=cancelled_bookings)


# Fresh refusals each time: raising one shared instance would keep growing its traceback.
def _invalid_date(message: str) -> InvalidRequest:
    return InvalidRequest(f"The date {message}", [FieldIssue("date", message)])


def _sessions_changed() -> ChangedMeanwhile:
    return ChangedMeanwhile("Sessions at this site changed meanwhile; try again")


def _overlap(other: Session) -> SessionOverlaps:
    return SessionOverlaps(f"A {other.product} session from {other.start:%H:%M} to {other.end:%H:%M} that day "
                           "overlaps it")


def _has_bookings(slots: list[SlotState]) -> SessionHasBookings:
    places = sum(slot.booked for slot in slots)
    return SessionHasBookings(f"{places} place(s) in this session are booked; send cancelBookings: true to cancel "
                              "those bookings with notice")
