"""Ports of sites: sites, sessions and slots, staff assignments, admin idempotency keys, postcodes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.domain.sites import Session, Site
from shared.domain.slots import Slot

SessionStatus = Literal["open", "cancelled"]
IdempotencyOutcome = Literal["new", "replay", "conflict"]


@dataclass(frozen=True)
class StoredSite:
    """A registered site, with the digest of the Idempotency-Key that registered it (None without one)."""

    site: Site
    registration_key: str | None


@dataclass(frozen=True)
class StoredSession:
    session: Session
    status: SessionStatus


@dataclass(frozen=True)
class SessionDay:
    """The open sessions of one site on one day, by session id: the ledger that refuses overlaps.

    `etag` is the version a conditional save must match; None when the day has no ledger yet.
    """

    sessions: dict[str, Session]
    etag: str | None = None


@dataclass(frozen=True)
class SlotState:
    """A slot as search and session cancellation read it: its times, places and whether it is open."""

    slot_id: str
    session_id: str
    product: str
    start: dt.datetime
    end: dt.datetime
    capacity: int
    booked: int
    status: str


class SiteStore(Protocol):
    """Sites, sessions, session-day ledgers and slots (Cosmos `sites`, one partition per site)."""

    async def create_site(self, site: Site, registration_key: str | None, created_by: str,
                          now: dt.datetime) -> bool:
        """Store a new site; False when a site with that id exists already."""
        ...

    async def read_site(self, site_id: str) -> StoredSite | None: ...

    async def all_sites(self) -> list[Site]:
        """Every site (a cross-partition read: for the in-process site index only)."""
        ...

    async def session_day(self, site_id: str, day: dt.date) -> SessionDay: ...

    async def save_session_day(self, site_id: str, day: dt.date, sessions: dict[str, Session],
                               previous: SessionDay) -> bool:
        """Store the day's sessions only if the ledger is still as `previous` read it; else False."""
        ...

    async def read_session(self, site_id: str, session_id: str) -> StoredSession | None: ...

    async def put_session(self, site_id: str, session_id: str, session: Session, status: SessionStatus,
                          slot_count: int, by: str, now: dt.datetime) -> None: ...

    async def create_slots(self, slots: tuple[Slot, ...]) -> int:
        """Create the slots not there yet, reopening any left by a cancelled session at the same time.

        Never touches the counts or holds of a slot that is open. Returns how many were created or reopened.
        """
        ...

    async def session_slots(self, site_id: str, session_id: str) -> list[SlotState]: ...

    async def close_slot(self, site_id: str, slot_id: str, only_if_unbooked: bool) -> bool:
        """Mark the slot cancelled so nobody can book it; with `only_if_unbooked`, only while none is booked."""
        ...

    async def reopen_slot(self, site_id: str, slot_id: str) -> None: ...

    async def open_slots(self, site_id: str, first_day: dt.date, last_day: dt.date, product: str | None,
                         after: dt.datetime) -> list[SlotState]:
        """Open slots with a free place, starting after `after`, on London dates first_day..last_day."""
        ...

    async def next_available_date(self, site_id: str, product: str | None, after: dt.datetime) -> dt.date | None:
        """The London date of the site's first open slot with a free place starting after `after`."""
        ...


class StaffDirectory(Protocol):
    """Which sites each member of staff may act for: the app's own record, kept by NationalAdmin."""

    async def sites_of(self, user_id: str) -> frozenset[str] | None:
        """The user's sites; None when they were never assigned any."""
        ...

    async def assign(self, user_id: str, sites: tuple[str, ...], by: str, now: dt.datetime) -> None: ...


class IdempotencyKeys(Protocol):
    """Which request body first used each Idempotency-Key of the admin routes."""

    async def claim(self, key_id: str, body_hash: str, now: dt.datetime,
                    window: dt.timedelta) -> IdempotencyOutcome:
        """new: first use (or the last use is older than `window`); replay: the same body; conflict: another."""
        ...


class PostcodeLocator(Protocol):
    async def locate(self, postcode: str) -> tuple[float, float] | None:
        """(latitude, longitude) of a full postcode or a district; None when unknown or not a postcode."""
        ...


class SessionBookingCanceller(Protocol):
    """Implemented by the booking service: used when a session is cancelled together with its bookings."""

    async def cancel_bookings_in_slots(self, slot_ids: list[str]) -> int:
        """Cancel, with notice to each person, every active booking holding one of these slots; how many.

        Called once the slots are marked cancelled (nobody can take a place any more). Must be idempotent:
        a session cancellation a crash interrupted is finished by calling it again with the same slots.
        """
        ...
