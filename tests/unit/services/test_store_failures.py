"""The booking saga when Cosmos DB throttles, times out or is unavailable (docs/security.md, finding 6).

A store failing for a moment must not leave the person "already booked" until the repair timer runs,
must not book anyone twice, and must not lose a booking whose commit landed before the timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from shared.ports.common import StoreUnavailableError
from shared.services.booking import BookAppointments
from shared.services.errors import Refusal
from tests.unit.services.fakes import BOOKING_BORN, BookingWorld, StoreFaults

SOON = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def request(number: str, *slots: str) -> BookAppointments:
    return BookAppointments(nhs_number=number, date_of_birth=BOOKING_BORN, slot_ids=slots, mobile="+447700900123")


def once(step: str, when: str) -> StoreFaults:
    """The first request of one kind fails; everything else works."""
    done: list[str] = []

    def plan(name: str) -> str | None:
        if name == step and not done:
            done.append(name)
            return when
        return None

    return StoreFaults(plan)


@pytest.mark.parametrize("step", ["claim_doses", "create_holding"])
async def test_a_store_failing_mid_saga_gives_back_at_once_what_the_attempt_took(step: str) -> None:
    world = BookingWorld()
    slot = world.slot(SOON, capacity=2)
    number = world.person()
    once(step, "before").wrap_world(world)

    with pytest.raises(StoreUnavailableError):
        await world.service.book(request(number, slot))

    world.check_invariants()  # no repair timer: nothing is held by the failed attempt
    assert world.holds.slot(slot).booked == 0
    booked = await world.service.book(request(number, slot))  # not "already booked"
    assert booked.status == "confirmed" and world.holds.slot(slot).booked == 1
    world.check_invariants()


async def test_a_commit_that_timed_out_after_landing_is_answered_as_booked() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    number = world.person()
    once("create_holding", "after").wrap_world(world)

    booked = await world.service.book(request(number, slot))

    assert booked.status == "confirmed" and world.holds.slot(slot).booked == 1
    world.check_invariants()


async def test_when_the_release_fails_too_the_repair_timer_finishes_it() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    number = world.person()
    down = {"on": False, "tripped": False}

    def plan(name: str) -> str | None:
        if name == "create_holding" and not down["tripped"]:
            down["on"] = down["tripped"] = True  # the store goes down at the batch and stays down
        return "before" if down["on"] else None

    StoreFaults(plan).wrap_world(world)
    with pytest.raises(StoreUnavailableError):
        await world.service.book(request(number, slot))
    down["on"] = False
    world.clock.advance(minutes=3)  # past the timeout, within the repair's sweep
    await world.service.repair()
    world.check_invariants()
    assert (await world.service.book(request(number, slot))).status == "confirmed"


async def test_five_percent_faults_at_every_step_book_nobody_twice_and_lose_nobody() -> None:
    """Forty people book at once, retrying with their Idempotency-Key on 503, against a store that fails 5%
    of its requests (before or after the write, at random)."""
    world = BookingWorld()
    slots = [world.slot(SOON + dt.timedelta(minutes=10 * i), capacity=4) for i in range(10)]
    people = [world.person() for _ in range(40)]
    rng = random.Random(15)
    faults = StoreFaults(lambda name: rng.choice(("before", "after")) if rng.random() < 0.05 else None)
    faults.wrap_world(world)

    async def book(i: int) -> tuple[str, int]:
        unavailable = 0
        for _ in range(50):
            try:
                record = await world.service.book(request(people[i], slots[i % 10]), f"key-{i}")
                return record.reference, unavailable
            except StoreUnavailableError:
                unavailable += 1
            except Refusal as refused:
                return type(refused).__name__, unavailable
        return "gave up", unavailable

    results = await asyncio.gather(*(book(i) for i in range(40)))
    references = [reference for reference, _ in results]
    assert sum(faults.failed.values()) > 10 and sum(n for _, n in results) > 0  # the faults did bite
    assert all(len(reference) == 9 for reference in references), references  # everyone booked, in the end
    assert len(set(references)) == 40
    world.service.step_hook = lambda step: None
    world.clock.advance(minutes=5)
    faults.plan = lambda name: None
    await world.service.repair()
    world.check_invariants()  # each slot counts exactly its confirmed bookings; no dose claimed twice
    for slot in slots:
        assert world.holds.slot(slot).booked == 4


async def test_a_retry_with_the_same_key_finishes_a_give_back_that_failed_and_books() -> None:
    """The claim times out after landing, and giving it back fails too: the retry must not be "already booked"."""
    world = BookingWorld()
    slot = world.slot(SOON)
    number = world.person()
    planned = {"claim_doses": ["after"], "release_doses": ["before"]}
    StoreFaults(lambda name: planned[name].pop() if planned.get(name) else None).wrap_world(world)

    with pytest.raises(StoreUnavailableError):
        await world.service.book(request(number, slot), "key-1")
    assert world.patients.people[number].claims  # the marker a released attempt still holds

    booked = await world.service.book(request(number, slot), "key-1")

    assert booked.status == "confirmed" and world.patients.people[number].claims[1].reference == booked.reference
    world.check_invariants()
