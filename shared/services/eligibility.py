"""The eligibility check: the person proved by one read and one conditional write, the cached policy, the decision."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from shared.domain.eligibility import EligibilityDecision, PatientFacts, decide_eligibility, not_matched
from shared.domain.throttling import MatchLockRule
from shared.ports.common import Clock
from shared.ports.patients import PatientLookup, PatientStore
from shared.services.errors import RateLimitedError
from shared.services.identity import prove_person
from shared.services.policy import PolicyService
from shared.services.throttle import ClientThrottle

LONDON = ZoneInfo("Europe/London")


def _itself(lookup: PatientLookup) -> PatientLookup:
    return lookup


class EligibilityService:
    """Answers "may this person book" without ever telling an unknown number from a wrong birth date."""

    def __init__(self, patients: PatientStore, policies: PolicyService, clock: Clock,
                 throttle: ClientThrottle, lock_rule: MatchLockRule | None = None) -> None:
        self._throttle = throttle
        self._patients = patients
        self._policies = policies
        self._clock = clock
        self._lock_rule = lock_rule or MatchLockRule()

    async def check(self, nhs_number: str, date_of_birth: dt.date, client: str) -> EligibilityDecision:
        """Raises RateLimitedError when the client calls too often or the number is locked."""
        wait = self._throttle.retry_after(client)
        if wait:
            raise RateLimitedError(wait)
        now = self._clock.now()
        # Failures are counted the same way for unknown numbers, so lock-outs reveal nothing either.
        lookup = await prove_person(self._patients, lambda: self._patients.lookup(nhs_number), _itself,
                                    nhs_number, date_of_birth, now, self._lock_rule)
        if lookup is None or lookup.record is None:
            return not_matched()
        record = lookup.record
        policy = (await self._policies.current()).policy
        facts = PatientFacts(
            date_of_birth=record.date_of_birth,
            flags=frozenset(record.flags),
            vaccinations=tuple(record.vaccinations),
            booked_doses=lookup.booked_doses,
        )
        return decide_eligibility(facts, policy, now.astimezone(LONDON).date())
