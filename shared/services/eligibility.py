"""The eligibility check: one point read of the person, the cached policy, and the domain's decision."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from shared.domain.eligibility import EligibilityDecision, PatientFacts, decide_eligibility, not_matched
from shared.domain.throttling import MatchLockRule, after_failed_match, locked_for
from shared.ports.common import Clock
from shared.ports.patients import PatientStore
from shared.services.errors import RateLimitedError
from shared.services.policy import PolicyService
from shared.services.throttle import ClientThrottle

LONDON = ZoneInfo("Europe/London")


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
        lookup = await self._patients.lookup(nhs_number)
        wait = locked_for(lookup.failures, now)
        if wait:
            raise RateLimitedError(wait)
        record = lookup.record
        if record is None or record.date_of_birth != date_of_birth:
            # Counted the same way for unknown numbers, so lock-outs reveal nothing either.
            await self._patients.save_match_failures(
                nhs_number, after_failed_match(lookup.failures, now, self._lock_rule)
            )
            return not_matched()
        policy = (await self._policies.current()).policy
        facts = PatientFacts(
            date_of_birth=record.date_of_birth,
            flags=frozenset(record.flags),
            vaccinations=tuple(record.vaccinations),
            booked_doses=lookup.booked_doses,
        )
        return decide_eligibility(facts, policy, now.astimezone(LONDON).date())
