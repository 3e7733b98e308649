"""EligibilityService: the same answer for unknown and mismatched people, lock-outs, throttling, policy."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.policy import DEFAULT_POLICY
from shared.domain.register import RegisterRecord
from shared.domain.throttling import MatchLockRule
from shared.services.eligibility import EligibilityService
from shared.services.errors import RateLimitedError
from shared.services.policy import PolicyService
from shared.services.throttle import ClientThrottle
from tests.unit.services.fakes import FakeClock, InMemoryPatientStore, InMemoryPolicyStore

KNOWN = "9990000018"
UNKNOWN = "9990000026"
BORN = dt.date(1950, 6, 1)


def person(**overrides: object) -> RegisterRecord:
    fields = {"nhsNumber": KNOWN, "dateOfBirth": BORN.isoformat(), "givenName": "Ada", "familyName": "Test",
              "postcode": "LS1 4AP"}
    return RegisterRecord.model_validate({**fields, **overrides})


def build(clock: FakeClock | None = None, burst: int = 1000) -> tuple[EligibilityService, InMemoryPatientStore,
                                                                     InMemoryPolicyStore, FakeClock]:
    clock = clock or FakeClock()
    patients = InMemoryPatientStore(records={KNOWN: person()})
    policies = InMemoryPolicyStore()
    ticks = iter(range(10**9))
    throttle = ClientThrottle(burst, 1.0, monotonic=lambda: float(next(ticks)) / 1000)
    service = EligibilityService(patients, PolicyService(policies, clock, 5), clock, throttle,
                                 MatchLockRule(max_failures=3, window=dt.timedelta(minutes=15),
                                               lock=dt.timedelta(minutes=15)))
    return service, patients, policies, clock


async def test_unknown_number_and_wrong_birth_date_get_the_same_answer() -> None:
    service, *_ = build()
    unknown = await service.check(UNKNOWN, BORN, "client")
    mismatched = await service.check(KNOWN, BORN + dt.timedelta(days=1), "client")
    assert unknown == mismatched
    assert unknown.reasons == ("NOT_MATCHED",) and not unknown.eligible


async def test_a_matched_person_gets_the_domain_decision_from_one_read_and_one_conditional_write() -> None:
    service, patients, *_ = build()
    decision = await service.check(KNOWN, BORN, "client")
    assert decision.eligible and decision.next_dose == 1 and decision.cohort == 3  # 75 on the day
    assert patients.reads == 1 and patients.writes == 1  # the match confirmed on the version read


@pytest.mark.parametrize("number", [KNOWN, UNKNOWN])
async def test_repeated_failed_matches_lock_known_and_unknown_numbers_alike(number: str) -> None:
    service, *_ = build()
    for _ in range(3):
        assert (await service.check(number, dt.date(1990, 1, 1), "client")).reasons == ("NOT_MATCHED",)
    with pytest.raises(RateLimitedError) as raised:
        await service.check(number, dt.date(1990, 1, 1), "client")
    assert 0 < raised.value.retry_after <= 15 * 60


async def test_a_locked_number_refuses_even_the_right_birth_date_until_the_lock_ends() -> None:
    service, _, _, clock = build()
    for _ in range(3):
        await service.check(KNOWN, dt.date(1990, 1, 1), "client")
    with pytest.raises(RateLimitedError):
        await service.check(KNOWN, BORN, "client")
    clock.advance(minutes=15, seconds=1)
    assert (await service.check(KNOWN, BORN, "client")).eligible


async def test_failures_spread_beyond_the_window_never_lock() -> None:
    service, _, _, clock = build()
    for _ in range(6):
        await service.check(KNOWN, dt.date(1990, 1, 1), "client")
        clock.advance(minutes=8)
    assert (await service.check(KNOWN, BORN, "client")).eligible


async def test_a_client_calling_too_fast_is_limited_with_a_retry_after() -> None:
    service, *_ = build(burst=3)
    for _ in range(3):
        await service.check(KNOWN, BORN, "203.0.113.9")
    with pytest.raises(RateLimitedError) as raised:
        await service.check(KNOWN, BORN, "203.0.113.9")
    assert raised.value.retry_after >= 1
    assert (await service.check(KNOWN, BORN, "198.51.100.1")).eligible  # others are unaffected


async def test_an_active_booking_for_the_next_dose_is_already_booked() -> None:
    service, patients, *_ = build()
    patients.bookings[KNOWN] = frozenset({1})
    decision = await service.check(KNOWN, BORN, "client")
    assert not decision.eligible and "ALREADY_BOOKED" in decision.reasons


async def test_a_policy_change_takes_effect_once_the_cache_interval_passes() -> None:
    service, _, policies, clock = build()
    assert (await service.check(KNOWN, BORN, "client")).eligible
    closed = DEFAULT_POLICY.model_copy(update={"open_cohorts": (1, 2)})
    await PolicyService(policies, clock, 5).replace(closed, "admin")  # another instance changes it
    assert (await service.check(KNOWN, BORN, "client")).eligible  # still cached here
    clock.advance(seconds=5)
    assert (await service.check(KNOWN, BORN, "client")).reasons == ("COHORT_NOT_OPEN",)
