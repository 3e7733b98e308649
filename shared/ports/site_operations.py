"""Ports of site operations: vaccination records, doses on the person's register record, and the scan for
appointments whose day ended without a dose or a cancellation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from shared.domain.eligibility import Vaccination
from shared.domain.vaccination import VaccinationRecord


class VaccinationRecords(Protocol):
    """The record of each dose given (Cosmos `vaccinations`, a partition per site): what NIMS receives."""

    async def put(self, record: VaccinationRecord) -> None:
        """Write the record unless one with its id is there already (idempotent)."""
        ...

    async def get(self, vaccination_id: str, site_id: str) -> VaccinationRecord | None: ...


class RegisterDoses(Protocol):
    """Doses this service recorded, on the person's document beside the register part a NIMS import replaces."""

    async def add_dose(self, nhs_number: str, dose: Vaccination) -> None:
        """Add the dose to the person's record; keyed by its vaccination id, so adding it again changes nothing."""
        ...


@dataclass(frozen=True)
class UnsettledAppointment:
    """An appointment listed in a site's day list that is still `confirmed` or `checkedIn`."""

    reference: str
    home_site_id: str
    slot_id: str


class AttendanceScan(Protocol):
    async def unsettled_before(self, day: dt.date, limit: int) -> list[UnsettledAppointment]:
        """Appointments on London dates before `day` still confirmed or checked in (at most `limit`)."""
        ...


@dataclass(frozen=True)
class MoveJournal:
    """A session move: where to, and what became of each booking so far (by reference)."""

    to_session_id: str
    moved: dict[str, str]  # reference -> the slot it moved to
    cancelled: dict[str, str]  # reference -> why it could not be moved
    done: bool = False


class SessionMoveJournals(Protocol):
    """One journal per moved session, beside the session (Cosmos `sites`, the site's partition)."""

    async def start(self, site_id: str, session_id: str, to_session_id: str, now: dt.datetime) -> MoveJournal:
        """The session's journal: created for this target, or the one already there (perhaps for another)."""
        ...

    async def note(self, site_id: str, session_id: str, reference: str, *, moved_to: str | None = None,
                   cancelled: str | None = None) -> None:
        """Record what became of one booking (idempotent)."""
        ...

    async def finish(self, site_id: str, session_id: str) -> MoveJournal: ...
