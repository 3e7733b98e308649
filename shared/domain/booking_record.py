"""A booking as the saga keeps it: its appointments, status, pending work and unsent events."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.domain.audit import AuditEntry
from shared.domain.booking import BookingStatus, is_open
from shared.domain.vaccination import GivenDose, VaccinationRecord

AppointmentStatus = Literal["pending", "confirmed", "cancelled", "released", "moved", "checkedIn", "vaccinated",
                            "didNotAttend"]


class RecordModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class Appointment(RecordModel):
    dose: int
    slot_id: str
    site_id: str
    start: dt.datetime
    local_date: dt.date
    product: str
    site_name: str
    site_postcode: str
    # Set once the appointment moves on by itself at the site (checked in, vaccinated, did not attend) or is
    # cancelled while another appointment of the booking is kept; None: as the booking's status.
    status: BookingStatus | None = None
    vaccination_id: str | None = None  # the dose recorded at this appointment


class Person(RecordModel):
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date


class Contact(RecordModel):
    mobile: str | None = None
    email: str | None = None


class OutboxEvent(RecordModel):
    """An event the booking owes the notification handlers; the relay sends it and marks it sent."""

    event_id: str
    type: Literal["BookingConfirmed", "BookingCancelled", "BookingRescheduled", "BookingDidNotAttend",
                  "VaccinationRecorded", "BookingDoseGivenElsewhere"]
    occurred_at: dt.datetime
    previous_appointments: list[Appointment] = []
    # The appointments the event is about when not all of the booking's (a missed one; those a cancel or a
    # move changed while a dose already given stays); None: all of them.
    appointments: list[Appointment] | None = None
    vaccination: GivenDose | None = None  # VaccinationRecorded: what was given (no personal data)


class Cleanup(RecordModel):
    """Work a committed change still owes, written in the same write as the change so a crash cannot lose it.

    Every item is idempotent: slots to give back, dose markers to clear, day-list entries to write or retire.
    """

    release_slots: list[Appointment] = []
    release_doses: list[int] = []
    put_entries: list[Appointment] = []
    retire_entries: list[tuple[Appointment, str]] = []
    # Site operations (docs/site-operations.md): vaccination records to write and their doses to add to the
    # person's register record, audit entries to write, and events to owe once all of that is done (so an
    # event never announces a record that is not there yet).
    vaccinations: list[VaccinationRecord] = []
    audit: list[AuditEntry] = []
    emit: list[OutboxEvent] = []
    since: dt.datetime


class Move(RecordModel):
    """A reschedule in flight: the new slots being held before the old are given up."""

    to: list[Appointment]
    since: dt.datetime


class BookingRecord(RecordModel):
    reference: str
    home_site_id: str  # partition of this document: the first appointment's site when it was booked
    status: BookingStatus
    appointments: list[Appointment]
    person: Person
    contact: Contact
    created_at: dt.datetime
    deadline: dt.datetime  # a pending booking not confirmed by then is released by the repair timer
    confirmed_at: dt.datetime | None = None
    body_hash: str | None = None
    outbox: list[OutboxEvent] = []
    cleanup: Cleanup | None = None
    move: Move | None = None
    version: int = 1
    booked_by: str | None = None  # the staff user who booked it for the person (a phone booking)
    walk_in: bool = False  # made at the site to record a dose given without an appointment

    def doses(self) -> list[int]:
        return [a.dose for a in self.appointments]

    def status_of(self, appointment: Appointment) -> BookingStatus:
        """The appointment's own status: what the site recorded for it, else the booking's."""
        return appointment.status or self.status

    def open_appointments(self) -> list[Appointment]:
        """The appointments still to happen (each holds its place and its dose claim)."""
        return [a for a in self.appointments if is_open(self.status_of(a))]

    def embedded(self) -> Appointment | None:
        """The appointment listed by the booking document itself: the first one at its home site.

        The others get entries of their own in their sites' partitions, so that a single-dose booking
        is one document and every site's day list is one partition.
        """
        return next((a for a in self.appointments if a.site_id == self.home_site_id), None)

    def separate_entries(self) -> list[Appointment]:
        embedded = self.embedded()
        return [a for a in self.appointments if a is not embedded]
