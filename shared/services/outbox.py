"""The outbox relay: sends the events committed bookings owe, then marks them sent."""

from __future__ import annotations

import logging

from shared.domain.booking_record import Appointment, BookingRecord, OutboxEvent
from shared.events import BookingEvent, EventAppointment, EventContact, EventVaccination
from shared.observability import pseudonym
from shared.ports.bookings import BookingRecords, EventPublisher

log = logging.getLogger(__name__)


def _appointment(appointment: Appointment) -> EventAppointment:
    return EventAppointment(dose=appointment.dose, slot_id=appointment.slot_id, site_id=appointment.site_id,
                            site_name=appointment.site_name, site_postcode=appointment.site_postcode,
                            start=appointment.start, product=appointment.product)


def booking_event(record: BookingRecord, owed: OutboxEvent) -> BookingEvent:
    """The event as handlers receive it: self-contained, no NHS number, name or date of birth.

    A VaccinationRecorded event names the dose and where its record is, and no contact: nobody is texted.
    """
    given = owed.vaccination
    about = owed.appointments if owed.appointments is not None else record.appointments
    return BookingEvent(
        event_id=owed.event_id, type=owed.type, occurred_at=owed.occurred_at, reference=record.reference,
        booked_at=record.confirmed_at or record.created_at,
        appointments=[_appointment(a) for a in about],
        previous_appointments=[_appointment(a) for a in owed.previous_appointments],
        contact=EventContact() if given is not None else EventContact(mobile=record.contact.mobile,
                                                                      email=record.contact.email),
        vaccination=EventVaccination(
            vaccination_id=given.vaccination_id, site_id=given.site_id, ods_code=given.ods_code,
            product=given.product, dose=given.dose, batch_number=given.batch_number,
            administered_at=given.administered_at) if given is not None else None,
        person=pseudonym(record.person.nhs_number, "event-person"),
    )


class OutboxRelay:
    """At least once: a crash after sending and before marking sends again, and handlers dedupe on event_id."""

    def __init__(self, records: BookingRecords, publisher: EventPublisher) -> None:
        self._records = records
        self._publisher = publisher

    async def relay(self, limit: int = 200) -> int:
        sent = 0
        for stored in await self._records.with_unsent_events(limit):
            for owed in stored.record.outbox:
                await self._publisher.publish(booking_event(stored.record, owed))
                sent += 1
            # On the etag: an event added meanwhile keeps the booking in the next round's query.
            await self._records.replace(stored, stored.record.model_copy(update={"outbox": []}))
        if sent:
            log.info("outbox: %d booking event(s) sent", sent)
        return sent
