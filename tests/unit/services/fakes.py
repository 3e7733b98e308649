"""In-memory implementations of the ports, for unit tests of services only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from shared.api.models import NimsPatient
from shared.domain.policy import CampaignPolicy
from shared.domain.throttling import MatchFailures
from shared.ports import PatientLookup, StoredPolicy, VersionConflictError


@dataclass
class FakeClock:
    current: dt.datetime = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += dt.timedelta(**kwargs)


@dataclass
class InMemoryPatientStore:
    records: dict[str, NimsPatient] = field(default_factory=dict)
    bookings: dict[str, frozenset[int]] = field(default_factory=dict)
    failures: dict[str, MatchFailures] = field(default_factory=dict)
    reads: int = 0
    writes: int = 0

    async def lookup(self, nhs_number: str) -> PatientLookup:
        self.reads += 1
        return PatientLookup(self.records.get(nhs_number), self.bookings.get(nhs_number, frozenset()),
                             self.failures.get(nhs_number))

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        self.writes += 1
        self.failures[nhs_number] = failures

    async def upsert_register_record(self, record: NimsPatient, now: dt.datetime) -> None:
        self.writes += 1
        self.records[record.nhs_number] = record


@dataclass
class InMemoryPolicyStore:
    stored: StoredPolicy | None = None
    loads: int = 0

    async def load(self) -> StoredPolicy | None:
        self.loads += 1
        return self.stored

    async def save(self, policy: CampaignPolicy, previous: StoredPolicy | None, now: dt.datetime,
                   updated_by: str) -> StoredPolicy:
        current_version = self.stored.version if self.stored else 0
        if (previous.version if previous else 0) != current_version:
            raise VersionConflictError
        self.stored = StoredPolicy(policy, current_version + 1, now, etag=str(current_version + 1))
        return self.stored
