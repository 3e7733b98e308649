"""The texts site operations owe: one for a missed appointment (how to book again), none for a dose recorded."""

from __future__ import annotations

from shared.domain.messages import Message, Visit, kind_of, sms_text
from tests.unit.services.test_notifications import World, event


async def test_a_dose_recorded_is_not_texted_to_anyone() -> None:
    world = World()
    await world.service().on_booking_event(event("VaccinationRecorded", "vac-1.recorded"))
    assert world.sms.texts == [] and world.deliveries.records == {}


async def test_a_missed_appointment_is_texted_once_with_how_to_book_again() -> None:
    world = World()
    service = world.service()
    missed = event("BookingDidNotAttend", "ABCD2345.3.didNotAttend", email=None)
    await service.on_booking_event(missed)
    await service.on_booking_event(missed)
    [(_, text)] = world.sms.texts
    assert text.startswith("Our records show you were not vaccinated at your appointment:")
    assert "To book again, go to https://book.example.org." in text and "ABCD2345" in text


def test_every_event_type_either_has_a_message_or_is_left_alone() -> None:
    assert kind_of("BookingDidNotAttend") == "didNotAttend"
    assert kind_of("VaccinationRecorded") is None
    import datetime as dt

    visit = Visit(1, "Riverside Centre", "AB1 2CD", dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC))
    later = Visit(2, "Riverside Centre", "AB1 2CD", dt.datetime(2026, 5, 10, 9, 30, tzinfo=dt.UTC))
    text = sms_text(Message("didNotAttend", "ABCD2345", (visit,), (later,)), "https://book.example.org")
    assert text.isascii() and "Dose 1: Tuesday 10 March 2026 at 9:30am" in text


def test_a_missed_first_dose_says_the_second_is_cancelled_too() -> None:
    import datetime as dt

    visit = Visit(1, "Riverside Centre", "AB1 2CD", dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC))
    later = Visit(2, "Riverside Centre", "AB1 2CD", dt.datetime(2026, 5, 10, 9, 30, tzinfo=dt.UTC))
    lines = sms_text(Message("didNotAttend", "ABCD2345", (visit,), (later,)), "https://book.example.org").splitlines()
    assert lines[2:4] == ["Your later appointment is cancelled too:", "Dose 2: Sunday 10 May 2026 at 10:30am, "
                          "Riverside Centre, AB1 2CD"]
