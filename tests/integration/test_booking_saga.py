"""The booking saga against the Cosmos emulator: races, crashes, idempotency, request counts."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from functions.http import as_problem
from shared import resources
from shared.adapters.clients import get_clients
from shared.composition import Services
from shared.services.booking import BookAppointments
from shared.services.errors import NotFound, Refusal, SlotFull
from tests.conftest import EmulatorEndpoints
from tests.integration.booking_world import World
from tests.unit.services.fakes import FakeClock

pytestmark = pytest.mark.integration

SOON = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=3, hours=2)


class SimulatedCrash(Exception):
    pass


@pytest.fixture
async def world(provisioned: EmulatorEndpoints) -> World:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    world = World(Services(get_clients(), clock))
    await world.site()
    return world


def request(number: str, *slots: str, born: str = "1960-05-05", mobile: str | None = None) -> BookAppointments:
    return BookAppointments(nhs_number=number, date_of_birth=dt.date.fromisoformat(born), slot_ids=slots,
                            mobile=mobile)


async def outcome(world: World, body: BookAppointments, key: str | None = None) -> str:
    try:
        return (await world.app.bookings.book(body, key)).reference
    except Refusal as refused:
        return as_problem(refused).problem.code  # the code the caller would see


async def test_last_places_go_to_exactly_capacity_of_a_hundred_concurrent_bookers(world: World) -> None:
    slot = await world.slot(SOON, capacity=10)
    numbers = await world.people(100)
    results = await asyncio.gather(*(outcome(world, request(n, slot)) for n in numbers))
    assert sum(r == "SLOT_FULL" for r in results) == 90
    assert len({r for r in results if r != "SLOT_FULL"}) == 10
    assert (await world.slot_doc(slot))["booked"] == 10
    await world.check_invariants([slot], numbers)


async def test_one_person_ten_concurrent_attempts_make_exactly_one_booking(world: World) -> None:
    slots = [await world.slot(SOON + dt.timedelta(minutes=10 * i), capacity=5) for i in range(10)]
    [number] = await world.people(1)
    results = await asyncio.gather(*(outcome(world, request(number, s)) for s in slots))
    assert sorted(r for r in results if r == "ALREADY_BOOKED") == ["ALREADY_BOOKED"] * 9
    assert sum(len(r) == 9 for r in results) == 1
    assert sum([(await world.slot_doc(s))["booked"] for s in slots]) == 1
    await world.check_invariants(slots, [number])


@pytest.mark.parametrize("crash_after", ["claimed", "held:2", "confirmed", "cleaned"])
async def test_a_crash_after_any_step_is_repaired_with_nothing_lost_or_leaked(world: World, crash_after: str) -> None:
    other_site = await world.site(f"{world.site_id}b", name="Second Site")
    first = await world.slot(SOON, capacity=3)
    second = await world.slot(SOON + dt.timedelta(days=60), capacity=3, site_id=other_site)
    [number] = await world.people(1)

    def crash(step: str) -> None:
        if step == crash_after:
            raise SimulatedCrash(step)

    world.app.bookings.step_hook = crash
    with pytest.raises(SimulatedCrash):
        await world.app.bookings.book(request(number, first, second))
    world.app.bookings.step_hook = lambda step: None

    assert isinstance(world.app.clock, FakeClock)
    world.app.clock.advance(minutes=3)  # past the saga's timeout and the cleanup grace, within the claim sweep
    repaired = await world.app.bookings.repair()
    assert repaired["claims_released"] == (0 if crash_after in ("confirmed", "cleaned") else 1)

    view = await world.app.patient_store.booking_view(number)
    committed = crash_after in ("confirmed", "cleaned")
    first_doc = await world.slot_doc(first)
    second_doc = await world.slot_doc(second, other_site)
    assert first_doc["booked"] == second_doc["booked"] == (1 if committed else 0)
    assert sorted(view.claims) == ([1, 2] if committed else [])
    if committed:
        record = await world.booking(view.claims[1].reference)
        assert record is not None and record.status == "confirmed" and record.cleanup is None
        entries = await world.app.booking_records.day_list(other_site, second_doc["localDate"] and
                                                           dt.date.fromisoformat(second_doc["localDate"]))
        assert [e.reference for e in entries] == [record.reference]  # the second site lists its appointment
    # Capacity and markers came back, so the person can book again.
    assert len(await outcome(world, request(number, first))) == 9 or committed


async def test_a_replay_with_the_same_key_returns_the_first_booking(world: World) -> None:
    slot = await world.slot(SOON, capacity=5)
    [number] = await world.people(1)
    first = await world.app.bookings.book(request(number, slot), "key-1")
    again = await world.app.bookings.book(request(number, slot), "key-1")
    assert again.reference == first.reference
    assert (await world.slot_doc(slot))["booked"] == 1


async def test_the_same_key_with_another_body_is_a_conflict(world: World) -> None:
    slot = await world.slot(SOON, capacity=5)
    other = await world.slot(SOON + dt.timedelta(hours=1), capacity=5)
    [number] = await world.people(1)
    await world.app.bookings.book(request(number, slot), "key-2")
    assert await outcome(world, request(number, other), "key-2") == "IDEMPOTENCY_KEY_REUSED"


async def test_a_replay_after_a_crash_completes_the_same_booking(world: World) -> None:
    slot = await world.slot(SOON, capacity=5)
    [number] = await world.people(1)

    def crash(step: str) -> None:
        if step == "claimed":
            raise SimulatedCrash(step)

    world.app.bookings.step_hook = crash
    with pytest.raises(SimulatedCrash):
        await world.app.bookings.book(request(number, slot), "retry-me")
    world.app.bookings.step_hook = lambda step: None
    record = await world.app.bookings.book(request(number, slot), "retry-me")
    assert record.status == "confirmed"
    assert (await world.slot_doc(slot))["booked"] == 1
    await world.check_invariants([slot], [number])


async def test_a_single_dose_booking_costs_three_cosmos_requests(world: World) -> None:
    slot = await world.slot(SOON, capacity=5)
    numbers = await world.people(2)
    await world.app.bookings.book(request(numbers[0], slot))  # warm the policy, the site cache, SDK metadata
    counter = world.app.clients.cosmos_requests
    counter.reset()
    await world.app.bookings.book(request(numbers[1], slot))
    # The person's read; the match confirmed and the dose claimed in one patch; one batch (docs/bookings.md).
    assert dict(counter.by_kind) == {"GET docs": 1, "PATCH docs": 1, "POST docs": 1}, dict(counter.by_kind)


async def test_cancel_gives_the_place_back_and_lookup_still_finds_it(world: World) -> None:
    slot = await world.slot(SOON, capacity=1)
    first, second = await world.people(2)
    booking = await world.app.bookings.book(request(first, slot))
    assert await outcome(world, request(second, slot)) == "SLOT_FULL"
    cancelled = await world.app.bookings.cancel(booking.reference, first, dt.date(1960, 5, 5))
    assert cancelled.status == "cancelled"
    assert (await world.app.bookings.lookup(booking.reference, first, dt.date(1960, 5, 5))).status == "cancelled"
    assert len(await outcome(world, request(second, slot))) == 9
    await world.check_invariants([slot], [first, second])


async def test_lookup_with_any_mismatch_is_not_found(world: World) -> None:
    slot = await world.slot(SOON, capacity=2)
    first, second = await world.people(2)
    booking = await world.app.bookings.book(request(first, slot))
    for reference, number, born in [(booking.reference, first, dt.date(1960, 5, 6)),
                                    (booking.reference, second, dt.date(1960, 5, 5)),
                                    ("BCDFGHJKM", first, dt.date(1960, 5, 5))]:
        with pytest.raises(NotFound):
            await world.app.bookings.lookup(reference, number, born)


async def test_reschedule_moves_in_one_step_and_a_full_target_changes_nothing(world: World) -> None:
    old = await world.slot(SOON, capacity=2)
    new = await world.slot(SOON + dt.timedelta(days=1), capacity=2)
    full = await world.slot(SOON + dt.timedelta(days=2), capacity=1)
    first, second = await world.people(2)
    await world.app.bookings.book(request(second, full))
    booking = await world.app.bookings.book(request(first, old))
    with pytest.raises(SlotFull):
        await world.app.bookings.reschedule(booking.reference, first, dt.date(1960, 5, 5), [full])
    assert (await world.slot_doc(old))["booked"] == 1
    moved = await world.app.bookings.reschedule(booking.reference, first, dt.date(1960, 5, 5), [new])
    assert [a.slot_id for a in moved.appointments] == [new]
    assert (await world.slot_doc(old))["booked"] == 0 and (await world.slot_doc(new))["booked"] == 1
    await world.check_invariants([old, new, full], [first, second])


async def test_every_committed_change_emits_exactly_one_event(world: World) -> None:
    slot = await world.slot(SOON, capacity=2)
    [number] = await world.people(1)
    booking = await world.app.bookings.book(request(number, slot, mobile="07700 900001"))
    await world.app.bookings.cancel(booking.reference, number, dt.date(1960, 5, 5))
    sent: list[str] = []

    class Recorder:
        async def publish(self, event: object) -> None:
            sent.append(event.event_id)  # type: ignore[attr-defined]

    from shared.adapters.cosmos_booking_events import CosmosBookingOutbox
    from shared.services.outbox import EventDispatcher, OutboxRelay

    class Later:  # the repair path sends what is older than its grace period: be past it
        def now(self) -> dt.datetime:
            return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    outbox = CosmosBookingOutbox(world.app.clients.database().get_container_client("bookings"))
    relay = OutboxRelay(outbox, EventDispatcher(outbox, Recorder(), Later()), Later(), grace=dt.timedelta(0))
    await relay.relay()
    await relay.relay()
    mine = [e for e in sent if e.startswith(booking.reference)]
    assert [e.rsplit(".", 1)[1] for e in mine] == ["confirmed", "cancelled"]


class Gate:
    """An in-memory waiting room that is on: each token admits once."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.released: list[str] = []

    async def check(self, token: str | None, now: dt.datetime) -> bool:
        from shared.services.errors import AdmissionRequiredError

        if not token or not token.startswith("ok"):
            raise AdmissionRequiredError("missing")
        return True

    async def consume(self, token: str | None, now: dt.datetime, holder: str | None = None) -> bool:
        from shared.services.errors import AdmissionRequiredError

        await self.check(token, now)
        if token in self.used:
            raise AdmissionRequiredError("used")
        self.used.add(str(token))
        return True

    async def release(self, token: str, now: dt.datetime) -> None:
        self.used.discard(token)
        self.released.append(token)


async def test_while_the_room_is_on_each_admission_books_once_and_a_refusal_gives_it_back(world: World) -> None:
    from shared.services.errors import AdmissionRequiredError

    gate = Gate()
    world.app.bookings._admission = gate
    slot = await world.slot(SOON, capacity=1)
    first, second, third = await world.people(3)
    with pytest.raises(AdmissionRequiredError):
        await world.app.bookings.book(request(first, slot))
    assert (await world.slot_doc(slot))["booked"] == 0
    await world.app.bookings.book(request(first, slot), admission_token="ok-1")
    with pytest.raises(AdmissionRequiredError):
        await world.app.bookings.book(request(second, slot), admission_token="ok-1")  # replayed token
    with pytest.raises(SlotFull):
        await world.app.bookings.book(request(third, slot), admission_token="ok-3")  # full: nothing booked
    assert gate.released == ["ok-3"] and "ok-3" not in gate.used


async def test_cancelling_a_sessions_bookings_gives_every_place_back_once(world: World) -> None:
    slot = await world.slot(SOON, capacity=3)
    numbers = await world.people(2)
    for number in numbers:
        await world.app.bookings.book(request(number, slot))
    sites = world.container(resources.SLOTS.name)
    await sites.patch_item(slot, partition_key=world.site_id,
                           patch_operations=[{"op": "set", "path": "/status", "value": "cancelled"}])
    assert await world.app.bookings.cancel_bookings_in_slots([slot]) == 2
    assert await world.app.bookings.cancel_bookings_in_slots([slot]) == 0
    assert (await world.slot_doc(slot))["booked"] == 0
    for number in numbers:
        assert (await world.app.patient_store.booking_view(number)).claims == {}


async def test_guessing_birth_dates_through_booking_routes_locks_the_number(world: World) -> None:
    from shared.services.errors import RateLimitedError

    slot = await world.slot(SOON, capacity=3)
    [number] = await world.people(1)
    for _ in range(world.app.settings.match_lock_max_failures):
        assert await outcome(world, request(number, slot, born="1960-05-06")) == "NOT_ELIGIBLE"
    with pytest.raises(RateLimitedError):
        await world.app.bookings.lookup("BCDFGHJKM", number, dt.date(1960, 5, 5))
