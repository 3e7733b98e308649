"""Booking behind the waiting room, on in-memory ports: the gate cannot be skipped by a retry, is checked
before any store read, and a token from before the room opened does not book."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import pytest

from shared.domain.booking import BookingStatus
from shared.domain.waiting_room import ClaimSigner
from shared.services.booking import BookAppointments
from shared.services.errors import AdmissionRequiredError, SlotFull
from shared.services.waiting_room import WaitingRoomService
from tests.unit.services.fakes import BOOKING_BORN, BookingWorld, InMemoryQueue, InMemoryWaitingRoomStore

SOON = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


class SimulatedCrash(Exception):
    """The process dying between two writes."""


@dataclass
class GatedWorld:
    """A BookingWorld whose booking service asks a real waiting room (on in-memory ports) for admission."""

    world: BookingWorld = field(default_factory=BookingWorld)
    store: InMemoryWaitingRoomStore = field(default_factory=InMemoryWaitingRoomStore)

    def __post_init__(self) -> None:
        self.room = WaitingRoomService(self.store, InMemoryQueue(), self.world.clock, ClaimSigner(b"unit-test-key"),
                                       refresh_seconds=2, join_batch_seconds=0)
        self.world.service._admission = self.room

    async def switch(self, enabled: bool) -> None:
        await self.room.configure(enabled, 600, "admin")
        self.world.clock.advance(milliseconds=1)

    async def token(self) -> str:
        """An admission token of the room as it is now (a ticket let through by the timer when on)."""
        from shared.services.waiting_room import AdmissionTimer, JoinRecorder

        answer = await self.room.join()
        if not answer.admitted:
            queue = self.room.joins._publisher
            assert isinstance(queue, InMemoryQueue)
            for message in queue.messages:
                await JoinRecorder(self.store, self.world.clock).record(message)
            queue.messages.clear()
            self.world.clock.advance(seconds=2)
            await AdmissionTimer(self.store, self.world.clock).advance()
            answer = await self.room.status(answer.ticket)
        assert answer.admitted and answer.admission_token
        return answer.admission_token


def request(number: str, slot: str) -> BookAppointments:
    return BookAppointments(nhs_number=number, date_of_birth=BOOKING_BORN, slot_ids=(slot,), mobile="+447700900123")


async def test_a_retry_with_the_same_idempotency_key_goes_through_the_waiting_room() -> None:
    """The attack: take one admission, start a booking under a key, let it fail (a full slot gives the
    admission back), then retry under the same key with no token at all."""
    gated = GatedWorld()
    world = gated.world
    await gated.switch(True)
    slot = world.slot(SOON, capacity=1)
    holder, person = world.person(), world.person()
    taken = await world.service.book(request(holder, slot), admission_token=await gated.token())
    with pytest.raises(SlotFull):
        await world.service.book(request(person, slot), "key-1", admission_token=await gated.token())
    await world.service.cancel(taken.reference, holder, BOOKING_BORN)  # a place frees up
    with pytest.raises(AdmissionRequiredError):
        await world.service.book(request(person, slot), "key-1")
    with pytest.raises(AdmissionRequiredError):
        await world.service.book(request(person, slot), "key-1", admission_token="wra1.forged.token")
    assert world.holds.slot(slot).booked == 0


async def test_a_crashed_booking_resumes_with_its_own_admission_and_no_other_way() -> None:
    gated = GatedWorld()
    world = gated.world
    await gated.switch(True)
    slot = world.slot(SOON, capacity=3)
    number = world.person()
    token = await gated.token()

    def crash(step: str) -> None:
        if step == "claimed":
            raise SimulatedCrash(step)

    world.service.step_hook = crash
    with pytest.raises(SimulatedCrash):
        await world.service.book(request(number, slot), "key-1", admission_token=token)
    world.service.step_hook = lambda step: None
    with pytest.raises(AdmissionRequiredError):  # before: resuming skipped the gate altogether
        await world.service.book(request(number, slot), "key-1")
    other = await gated.token()
    resumed = await world.service.book(request(number, slot), "key-1", admission_token=token)
    assert resumed.status == BookingStatus.CONFIRMED and world.holds.slot(slot).booked == 1
    # The admission stays spent on this booking: another person's request cannot use it.
    second = world.person()
    with pytest.raises(AdmissionRequiredError) as refused:
        await world.service.book(request(second, slot), "key-1", admission_token=token)
    assert refused.value.reason == "used"
    assert (await world.service.book(request(second, slot), admission_token=other)).status == BookingStatus.CONFIRMED
    world.check_invariants()


async def test_the_admission_is_checked_before_any_store_is_read() -> None:
    gated = GatedWorld()
    world = gated.world
    await gated.switch(True)
    slot = world.slot(SOON)
    number = world.person()
    await world.service.book(request(world.person(), slot), admission_token=await gated.token())  # warm caches
    world.reset_requests()
    for token in (None, "wra1.forged.token", "not even a token"):
        with pytest.raises(AdmissionRequiredError):
            await world.service.book(request(number, slot), "key-1", admission_token=token)
    assert world.store_requests() == 0


async def test_a_token_taken_while_the_room_was_off_does_not_book_once_it_is_on() -> None:
    gated = GatedWorld()
    world = gated.world
    slot = world.slot(SOON)
    stockpiled = await gated.token()  # the room is off: admitted at once
    await gated.switch(True)
    with pytest.raises(AdmissionRequiredError) as refused:
        await world.service.book(request(world.person(), slot), admission_token=stockpiled)
    assert refused.value.reason == "expired" and world.holds.slot(slot).booked == 0


async def test_a_replay_of_a_committed_booking_returns_the_first_answer_and_spends_no_admission() -> None:
    gated = GatedWorld()
    world = gated.world
    await gated.switch(True)
    slot = world.slot(SOON)
    number = world.person()
    first = await world.service.book(request(number, slot), "key-1", admission_token=await gated.token())
    spent = set(gated.store.used)
    replay = await world.service.book(request(number, slot), "key-1", admission_token=await gated.token())
    assert replay.reference == first.reference and set(gated.store.used) == spent


async def test_a_double_submit_books_once_with_one_admission() -> None:
    gated = GatedWorld()
    world = gated.world
    await gated.switch(True)
    slot = world.slot(SOON)
    number = world.person()
    token = await gated.token()
    answers = await asyncio.gather(*(world.service.book(request(number, slot), "key-1", admission_token=token)
                                     for _ in range(3)), return_exceptions=True)
    references = {a.reference for a in answers if not isinstance(a, BaseException)}
    assert len(references) == 1, answers
    assert len(gated.store.used) == 1 and world.holds.slot(slot).booked == 1
    world.check_invariants()
