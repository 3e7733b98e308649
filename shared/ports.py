"""The interfaces (typing.Protocol) that use cases need from the outside world."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from shared.api.models import NimsPatient
from shared.domain.policy import CampaignPolicy
from shared.domain.throttling import MatchFailures


class Clock(Protocol):
    """The time now, in UTC; injected so that services and tests control it."""

    def now(self) -> dt.datetime: ...


class DependencyProbe(Protocol):
    """Checks that one store the app depends on answers."""

    @property
    def name(self) -> str: ...

    async def check(self) -> None:
        """Return when the dependency answers; raise otherwise."""
        ...


@dataclass(frozen=True)
class PatientLookup:
    """What one point read of a person's document tells: the register record, bookings, failed matches."""

    record: NimsPatient | None  # None: no such person on the register
    booked_doses: frozenset[int] = frozenset()
    failures: MatchFailures | None = None


class PatientStore(Protocol):
    """The national register's patient documents (Cosmos `patients`, one partition per person)."""

    async def lookup(self, nhs_number: str) -> PatientLookup: ...

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        """Keep the failed-match record, for a known person or an unknown number alike."""
        ...

    async def upsert_register_record(self, record: NimsPatient, now: dt.datetime) -> None:
        """Create or replace the register part of a person's document, keeping their bookings."""
        ...


@dataclass(frozen=True)
class StoredPolicy:
    """The campaign policy with the version that every instance converges on."""

    policy: CampaignPolicy
    version: int
    updated_at: dt.datetime | None
    etag: str | None = None


class PolicyStore(Protocol):
    async def load(self) -> StoredPolicy | None: ...

    async def save(self, policy: CampaignPolicy, previous: StoredPolicy | None, now: dt.datetime,
                   updated_by: str) -> StoredPolicy:
        """Store the next version; raises VersionConflictError if another writer got there first."""
        ...


class VersionConflictError(Exception):
    """A conditional write lost to a concurrent one."""
