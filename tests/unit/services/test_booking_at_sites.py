"""BookingService's entry for GP invitations: the same saga, at the named sites only, without the waiting room;
and the national service never books a GP practice's clinic."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.sites import Site
from shared.services.booking import BookAppointments, BookingService
from shared.services.errors import AdmissionRequiredError, NotFound
from shared.services.policy import PolicyService
from tests.unit.services.fakes import BOOKING_BORN, BookingWorld

SOON = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


class ClosedRoom:
    """The waiting room on, admitting nobody: a national booking without a token is refused."""

    async def check(self, token: str | None, now: dt.datetime) -> bool:
        raise AdmissionRequiredError("missing")

    async def consume(self, token: str | None, now: dt.datetime, holder: str | None = None) -> bool:
        raise AdmissionRequiredError("missing")

    async def release(self, token: str, now: dt.datetime) -> None:
        return None


def practice(world: BookingWorld, ods: str) -> str:
    world.sites.sites[ods] = Site.model_validate({
        "siteId": ods, "name": "Riverside Surgery", "type": "gpPractice", "odsCode": ods, "postcode": "LS1 4AP",
        "location": {"lat": 53.8, "lon": -1.55}, "products": ["PFIZER"], "ageBands": [{"minAge": 16}]})
    return world.slot(SOON, capacity=2, site_id=ods)


def request(number: str, slot: str) -> BookAppointments:
    return BookAppointments(nhs_number=number, date_of_birth=BOOKING_BORN, slot_ids=(slot,), mobile="+447700900123")


async def test_the_national_service_never_books_a_gp_practice_clinic() -> None:
    world = BookingWorld()
    clinic = practice(world, "Y90001")
    with pytest.raises(NotFound) as refused:
        await world.service.book(request(world.person(), clinic))
    assert refused.value.fields[0].field == "appointments[0].slotId"
    assert world.holds.slot(clinic).booked == 0


async def test_book_at_books_the_practice_clinic_with_the_same_saga_and_one_event() -> None:
    world = BookingWorld()
    clinic = practice(world, "Y90001")
    record = await world.service.book_at(request(world.person(), clinic), frozenset({"Y90001"}), "key-1")
    again = await world.service.book_at(request(record.person.nhs_number, clinic), frozenset({"Y90001"}), "key-1")
    assert again.reference == record.reference and record.status == "confirmed"
    await world.relay.relay()
    assert [e.type for e in world.publisher.events] == ["BookingConfirmed"]
    world.check_invariants()


async def test_book_at_refuses_every_site_outside_its_set() -> None:
    world = BookingWorld()
    practice(world, "Y90001")
    other = practice(world, "Y90002")
    national = world.slot(SOON, capacity=2, site_id="SITE-A")
    for slot in (other, national):
        with pytest.raises(NotFound):
            await world.service.book_at(request(world.person(), slot), frozenset({"Y90001"}))
    assert world.holds.slot(other).booked == 0 and world.holds.slot(national).booked == 0


async def test_book_at_does_not_pass_through_the_waiting_room() -> None:
    world = BookingWorld()
    clinic = practice(world, "Y90001")
    national = world.slot(SOON, capacity=2, site_id="SITE-A")
    gated = BookingService(world.patients, world.records, world.holds, world.sites,
                           PolicyService(world.policies, world.clock, refresh_seconds=60), world.clock,
                           reference_key=b"unit-test-reference-key", admission=ClosedRoom())
    with pytest.raises(AdmissionRequiredError):
        await gated.book(request(world.person(), national))
    record = await gated.book_at(request(world.person(), clinic), frozenset({"Y90001"}))
    assert record.status == "confirmed" and record.appointments[0].site_id == "Y90001"
