"""Booking events out: the change-feed handler, and the outbox timer kept as its repair path."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.domain.booking_record import Appointment, BookingRecord, OutboxEvent
from shared.events import BookingEvent, EventAppointment, EventContact, EventVaccination
from shared.observability import pseudonym
from shared.ports.bookings import BookingOutbox, EventPublisher, StoredBooking, UnreadableBooking
from shared.ports.common import Clock

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


class EventsNotPublishedError(Exception):
    """Some owed events could not be published; they stay owed (unmarked) and are tried again."""


@dataclass(frozen=True)
class Dispatched:
    """What one pass over owed events did: events published, events that failed, documents set aside."""

    published: int = 0
    failed: int = 0
    quarantined: int = 0


# Observers of the published events (the dashboard's counters): each pass's events, again if they fail.
EventObserver = Callable[[Sequence[BookingEvent]], Awaitable[None]]
# An observer is run beside the events, never in their path: a slow or failing counter store must not delay
# texts. A failed run is tried again after these pauses, then logged; at most this many runs wait at once.
OBSERVER_RETRIES = (1.0, 4.0)
OBSERVERS_IN_FLIGHT = 16
# Marks are written beside the next events too: an event is handled once it is on the queue, and the mark
# only spares the repair timer (a mark lost to a crash means one more send, deduped by the handlers).
MARKS_IN_FLIGHT = 256


async def _room(running: set[asyncio.Task[None]], limit: int) -> None:
    """Wait until fewer than `limit` of these background tasks run: a stuck store slows the caller, not memory."""
    while len(running) >= limit:
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)


def _beside(running: set[asyncio.Task[None]], work: Awaitable[None]) -> None:
    async def run() -> None:
        await work

    task = asyncio.create_task(run())
    running.add(task)
    task.add_done_callback(running.discard)


class EventDispatcher:
    """Publishes the events of many bookings at once, marks each booking whose events all went, sets aside
    documents that cannot be read. A failure anywhere stops nothing else; what failed stays owed."""

    def __init__(self, outbox: BookingOutbox, publisher: EventPublisher, clock: Clock, concurrency: int = 64,
                 observers: Sequence[EventObserver] = ()) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self.observers = list(observers)
        self._observing: set[asyncio.Task[None]] = set()
        self._marking: set[asyncio.Task[None]] = set()

    async def _publish(self, event: BookingEvent) -> bool:
        async with self._slots:
            try:
                await self._publisher.publish(event)
            except Exception as error:  # one event's failure must not hold up the others
                log.warning("event %s not published (%s); it stays owed", event.event_id, type(error).__name__)
                return False
            return True

    async def _settle(self, stored: StoredBooking) -> tuple[list[BookingEvent], int]:
        events = [booking_event(stored.record, owed) for owed in stored.record.outbox]
        results = await asyncio.gather(*(self._publish(event) for event in events))
        went = [event for event, ok in zip(events, results, strict=True) if ok]
        if len(went) == len(events):
            await _room(self._marking, MARKS_IN_FLIGHT)
            _beside(self._marking, self._mark(stored, self._clock.now()))
        return went, len(events) - len(went)

    async def _mark(self, stored: StoredBooking, sent_at: dt.datetime) -> None:
        try:
            # Changed meanwhile (False): the newer version still owes these events and comes round again.
            await self._outbox.mark_sent(stored, sent_at)
        except Exception as error:
            log.warning("booking events sent but not marked (%s); they will be sent again", type(error).__name__)

    async def _set_aside(self, unreadable: UnreadableBooking) -> bool:
        log.error("booking document %s in partition %s is unreadable (%s); quarantined", unreadable.document_id,
                  unreadable.partition, unreadable.reason)
        async with self._slots:
            try:
                await self._outbox.quarantine(unreadable)
            except Exception as error:
                log.warning("could not quarantine %s (%s)", unreadable.document_id, type(error).__name__)
                return False
        return True

    async def _observe(self, published: Sequence[BookingEvent]) -> None:
        for observe in self.observers:
            await _room(self._observing, OBSERVERS_IN_FLIGHT)
            _beside(self._observing, self._observe_one(observe, list(published)))

    async def _observe_one(self, observe: EventObserver, events: Sequence[BookingEvent]) -> None:
        for pause in (*OBSERVER_RETRIES, None):
            try:
                await observe(events)
                return
            except Exception as error:
                if pause is None:
                    log.warning("an event observer failed for %d event(s) (%s); given up", len(events),
                                type(error).__name__)
                    return
                await asyncio.sleep(pause)

    async def idle(self) -> None:
        """Wait until every mark and observer run started so far has finished (the repair timer, tests)."""
        while self._marking or self._observing:
            await asyncio.wait(self._marking | self._observing)

    async def dispatch(self, found: Sequence[StoredBooking | UnreadableBooking]) -> Dispatched:
        owing = [item for item in found if isinstance(item, StoredBooking) and item.record.outbox]
        unreadable = [item for item in found if isinstance(item, UnreadableBooking)]
        settled, aside = await asyncio.gather(asyncio.gather(*(self._settle(stored) for stored in owing)),
                                              asyncio.gather(*(self._set_aside(item) for item in unreadable)))
        published = [event for went, _ in settled for event in went]
        if published:
            await self._observe(published)
        return Dispatched(published=len(published), failed=sum(failed for _, failed in settled),
                          quarantined=sum(aside))


def _in_flight(record: BookingRecord) -> bool:
    return record.cleanup is not None or record.move is not None


class BookingEventFeed:
    """Turns the booking documents the change feed delivers into published events (docs/events.md).

    Documents that are not bookings are ignored; an unreadable one is quarantined and the rest go on. When an
    event could not be published the batch fails after the rest are done, so the host tries it again
    (handlers dedupe on event_id); bookings whose events all went are marked (beside the next batch) and owe
    nothing more.
    """

    def __init__(self, outbox: BookingOutbox, dispatcher: EventDispatcher) -> None:
        self._outbox = outbox
        self._dispatcher = dispatcher

    def _decode(self, document: Mapping[str, Any]) -> StoredBooking | UnreadableBooking | None:
        try:
            return self._outbox.decode(document)
        except Exception as error:  # whatever the shape, one document must not stop the batch
            return UnreadableBooking(str(document.get("id", "?")), "?", type(error).__name__)

    async def handle(self, documents: Sequence[Mapping[str, Any]]) -> Dispatched:
        # A booking whose saga is still at work (cleanup or a move in flight) is left for its next version,
        # which the saga writes within moments and which carries the same events: marking this one would
        # only make the saga's next write lose to the mark and try again. The repair path covers a saga
        # that never comes back.
        found = [item for item in map(self._decode, documents)
                 if item is not None and not (isinstance(item, StoredBooking) and _in_flight(item.record))]
        outcome = await self._dispatcher.dispatch(found)
        if outcome.failed:
            raise EventsNotPublishedError(f"{outcome.failed} booking event(s) not published")
        return outcome


class OutboxRelay:
    """The repair path: events the change feed missed, on bookings unchanged for longer than the grace period.

    The feed marks what it handles within about a second, so anything still unmarked after the grace period
    was missed (a batch lost after its retries, a feed read from "now" after the leases were reset, the
    trigger switched off). Pages are read only as far as the limit; nothing stops on one bad booking.
    """

    def __init__(self, outbox: BookingOutbox, dispatcher: EventDispatcher, clock: Clock,
                 grace: dt.timedelta = dt.timedelta(seconds=60)) -> None:
        self._outbox = outbox
        self._dispatcher = dispatcher
        self._clock = clock
        self._grace = grace

    async def relay(self, limit: int = 500) -> int:
        found = await self._outbox.unsent_before(self._clock.now() - self._grace, limit)
        outcome = await self._dispatcher.dispatch(found)
        await self._dispatcher.idle()  # marked before the next run looks, so nothing is sent twice by it
        if outcome.published or outcome.failed or outcome.quarantined:
            log.info("outbox repair: %d event(s) sent, %d failed, %d document(s) quarantined", outcome.published,
                     outcome.failed, outcome.quarantined)
        return outcome.published
