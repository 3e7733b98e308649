"""Personal data in booking documents expires once the booking's use is over (shared/domain/retention.py)."""

from __future__ import annotations

import datetime as dt

from shared.adapters.cosmos_bookings import booking_document
from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord, OutboxEvent
from shared.domain.retention import AFTER_LAST_APPOINTMENT, MINIMUM, NEVER, booking_ttl, entry_ttl

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY = 86_400


def appointment(start: dt.datetime, dose: int = 1) -> Appointment:
    return Appointment(dose=dose, slot_id=f"S1.{start:%Y-%m-%d.%H%M}.PFIZER", site_id="S1", start=start,
                       local_date=start.date(), product="PFIZER", site_name="Riverside", site_postcode="AB1 2CD")


def record(status: BookingStatus, *starts: dt.datetime, **extra: object) -> BookingRecord:
    return BookingRecord.model_validate({
        "reference": "ABCD2345", "homeSiteId": "S1", "status": status,
        "appointments": [appointment(start, dose).model_dump() for dose, start in enumerate(starts, start=1)],
        "person": {"nhsNumber": "9990000026", "givenName": "Ada", "familyName": "Lovelace",
                   "dateOfBirth": "1961-04-07"},
        "contact": {"mobile": "+447700900123"}, "createdAt": NOW, "deadline": NOW + dt.timedelta(minutes=2),
        **extra})


def test_a_confirmed_booking_expires_a_month_after_its_last_appointment() -> None:
    first, second = NOW + dt.timedelta(days=3), NOW + dt.timedelta(days=63)
    ttl = booking_ttl(record(BookingStatus.CONFIRMED, first, second), NOW)
    assert ttl == int((second + AFTER_LAST_APPOINTMENT - NOW).total_seconds())
    doc = booking_document(record(BookingStatus.CONFIRMED, first, second), NOW)
    assert doc["ttl"] == ttl and doc["booking"]["person"]["dateOfBirth"] == "1961-04-07"


def test_cancelled_and_released_bookings_expire_after_their_own_periods() -> None:
    soon = NOW + dt.timedelta(days=3)
    assert booking_ttl(record(BookingStatus.CANCELLED, soon), NOW) == 30 * DAY
    assert booking_ttl(record(BookingStatus.RELEASED, soon), NOW) == 7 * DAY


def test_a_booking_that_owes_work_never_expires_until_the_work_is_done() -> None:
    soon = NOW + dt.timedelta(days=3)
    assert booking_ttl(record(BookingStatus.PENDING, soon), NOW) == NEVER
    owed = OutboxEvent(event_id="ABCD2345.2.confirmed", type="BookingConfirmed", occurred_at=NOW)
    assert booking_ttl(record(BookingStatus.CONFIRMED, soon, outbox=[owed.model_dump()]), NOW) == NEVER


def test_nothing_expires_inside_the_idempotency_window_even_long_after_the_appointment() -> None:
    long_ago = NOW - dt.timedelta(days=400)
    assert booking_ttl(record(BookingStatus.VACCINATED, long_ago), NOW) == MINIMUM.total_seconds() >= DAY
    assert entry_ttl(appointment(long_ago), NOW) == MINIMUM.total_seconds()


def test_an_entry_at_another_site_expires_with_its_own_appointment_or_when_retired() -> None:
    later = NOW + dt.timedelta(days=60)
    assert entry_ttl(appointment(later), NOW) == int((later + AFTER_LAST_APPOINTMENT - NOW).total_seconds())
    assert entry_ttl(appointment(later), NOW, retired=True) == 30 * DAY
