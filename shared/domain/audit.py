"""The audit trail of staff actions: who did what, when, at which site, to which reference. Nothing else.

The architecture brief: every staff action leaves an audit entry, never clinical or contact data. An entry
therefore has no field that could hold an NHS number, a date of birth, a name, a phone number, a product
or a batch: the actor is the staff member's user id (their Entra object id), the reference is a booking
reference, a session id, a vaccination id or a staff user id, never a person's identifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AwareDatetime, Field, field_validator

from shared.domain.policy import DomainModel
from shared.domain.sites import london_date


class AuditAction(StrEnum):
    SITE_REGISTERED = "siteRegistered"
    SESSION_OPENED = "sessionOpened"
    SESSION_CANCELLED = "sessionCancelled"
    SESSION_MOVED = "sessionMoved"
    STAFF_ASSIGNED = "staffAssigned"
    POLICY_CHANGED = "policyChanged"
    WAITING_ROOM_CHANGED = "waitingRoomChanged"
    NIMS_IMPORTED = "nimsImported"
    CHECKED_IN = "checkedIn"
    VACCINATION_RECORDED = "vaccinationRecorded"
    PHONE_BOOKING = "phoneBooking"


# References are ids the service issued: booking references, session and vaccination ids, user ids.
# A value that is an NHS number (ten digits, perhaps spaced) is refused, so a slip that passes one is caught.
_REFERENCE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,159}$")
_NHS_NUMBER: Final = re.compile(r"^\d{3}[ -]?\d{3}[ -]?\d{4}$")
NATIONAL: Final = "national"  # the partition of actions that concern no one site


def _safe_reference(value: str | None) -> str | None:
    if value is None:
        return None
    if not _REFERENCE.match(value) or _NHS_NUMBER.match(value.strip()):
        raise ValueError("not a reference the service issued")
    return value


class AuditEntry(DomainModel):
    """One staff action. `entry_id` makes writing it idempotent: the same action retried is one entry."""

    entry_id: Annotated[str, Field(min_length=1, max_length=200)]
    at: AwareDatetime
    actor: Annotated[str, Field(min_length=1, max_length=200)]
    action: AuditAction
    site_id: str | None = None
    reference: str | None = None

    @field_validator("reference")
    @classmethod
    def _reference_is_an_id(cls, value: str | None) -> str | None:
        return _safe_reference(value)

    @field_validator("actor")
    @classmethod
    def _actor_is_an_id(cls, value: str) -> str:
        if _NHS_NUMBER.match(value.strip()):
            raise ValueError("an actor is a staff user id")
        return value

    @property
    def day(self) -> dt.date:
        """The Europe/London date the action happened on: what the audit is read by."""
        return london_date(self.at)

    @property
    def partition(self) -> str:
        """One partition per site and day (reads are by site and day); national actions have their own."""
        return f"{self.site_id or NATIONAL}.{self.day.isoformat()}"


def audit_entry(action: AuditAction, actor: str, at: dt.datetime, *, site_id: str | None = None,
                reference: str | None = None, once_per: str | None = None) -> AuditEntry:
    """An entry for an action. With `once_per` (what makes the action the same action: a vaccination id,
    a booking reference and dose), writing it again is a no-op; without, each call is its own entry.
    """
    key = once_per if once_per is not None else f"{at.isoformat()}|{actor}|{site_id}|{reference}"
    digest = hashlib.sha256(f"{action}|{key}".encode()).hexdigest()[:32]
    return AuditEntry(entry_id=f"{action}.{digest}", at=at, actor=actor or "unknown", action=action,
                      site_id=site_id, reference=reference)
