"""The operator dashboard: counters kept as booking events, sessions and texts flow, and the live view read
from them (never from the bookings). Costs and freshness of each figure: docs/dashboard.md."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.domain.dashboard import (
    TEXTS_FIELD,
    Activity,
    CounterDoc,
    FreePlaces,
    Increment,
    Increments,
    activity,
    activity_group,
    activity_key,
    counter_ttl_seconds,
    free_places,
    minute_field,
    place_taken,
    places_days,
    places_group,
    session_increment,
)
from shared.domain.sites import LONDON, Session
from shared.events import BookingEvent
from shared.observability import redacted_traceback
from shared.ports.common import Clock
from shared.ports.dashboard import CounterStore, QueueDepths
from shared.services.refresh import Refreshing
from shared.services.waiting_room import RoomOverview

log = logging.getLogger(__name__)

# (document, event id) pairs this instance has counted: a batch delivered again here adds nothing twice.
REMEMBERED_EVENTS = 50_000


def event_increments(event: BookingEvent, increments: Increments) -> None:
    """What one booking event adds: its type in its hour, a new booking in its minute, and places taken
    (confirmed, moved to) or given back (cancelled, moved from, given elsewhere) on their days."""
    increments.activity(event.occurred_at, event.type)
    if event.type == "BookingConfirmed":
        increments.activity(event.occurred_at, minute_field(event.occurred_at))
        for appointment in event.appointments:
            place_taken(increments, appointment.start, appointment.site_postcode, appointment.product, 1)
    elif event.type == "BookingCancelled":
        for appointment in event.appointments:
            place_taken(increments, appointment.start, appointment.site_postcode, appointment.product, -1)
    elif event.type == "BookingDoseGivenElsewhere":
        for appointment in [*event.appointments, *event.previous_appointments]:
            place_taken(increments, appointment.start, appointment.site_postcode, appointment.product, -1)
    elif event.type == "BookingRescheduled":
        # The event lists the booking's appointments after the move (moved or not) and the ones replaced.
        now_slots = {a.slot_id for a in event.appointments}
        before_slots = {a.slot_id for a in event.previous_appointments}
        for appointment in event.appointments:
            if appointment.slot_id not in before_slots:
                place_taken(increments, appointment.start, appointment.site_postcode, appointment.product, 1)
        for appointment in event.previous_appointments:
            if appointment.slot_id not in now_slots:
                place_taken(increments, appointment.start, appointment.site_postcode, appointment.product, -1)


class DashboardCounters:
    """The write side: booking events in batches, sessions opened and withdrawn, texts sent.

    At least once in, so at most a little over: a batch's counts are summed per document and written with
    one patch per document (a change-feed batch of a hundred bookings is a handful of writes). A batch
    delivered again to the same instance adds nothing twice (it remembers which events each document has
    counted); one that moves to another instance after a partial failure counts again on the documents
    that had been written. The trade-off is docs/dashboard.md's: the figures are an operator's view, and a
    per-event dedupe record would cost a write per event on the booking path's busiest flow.
    """

    def __init__(self, store: CounterStore, clock: Clock, remember: int = REMEMBERED_EVENTS) -> None:
        self._store = store
        self._clock = clock
        self._remember = remember
        self._counted: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def record(self, events: Sequence[BookingEvent]) -> None:
        """Count a batch of booking events; raises (after writing what it could) when a write failed, so
        that the batch is delivered again."""
        per_doc: dict[tuple[str, str], tuple[Increments, list[str]]] = {}
        for event in events:
            one = Increments()
            event_increments(event, one)
            for increment in one.documents():
                doc = (increment.group, increment.key)
                if (f"{increment.group}/{increment.key}", event.event_id) in self._counted:
                    continue
                gathered, ids = per_doc.setdefault(doc, (Increments(), []))
                for name, n in increment.counts.items():
                    gathered.add(increment.group, increment.key, increment.day, name, n)
                ids.append(event.event_id)
        # Claimed before the first write, so that the same events arriving at once (the feed and the repair
        # timer) are counted by one call; a document whose write fails is given back for the retry.
        for (group, key), (_, ids) in per_doc.items():
            self._remember_counted(f"{group}/{key}", ids)
        now = self._clock.now()
        failed: BaseException | None = None
        for (group, key), (gathered, ids) in per_doc.items():
            for increment in gathered.documents():
                try:
                    await self._store.add(increment, counter_ttl_seconds(increment.day, now))
                except Exception as error:
                    failed = error
                    for event_id in ids:
                        self._counted.pop((f"{group}/{key}", event_id), None)
        if failed is not None:
            raise failed

    def _remember_counted(self, doc: str, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self._counted[(doc, event_id)] = None
        while len(self._counted) > self._remember:
            self._counted.popitem(last=False)

    async def session_changed(self, site_postcode: str, session: Session, opened: bool) -> None:
        """Places a session opened (or withdrew). Never fails its caller: the session stands either way,
        and a lost count is logged (the figure is then short by the session's places)."""
        increment = session_increment(site_postcode, session, 1 if opened else -1)
        await self._quietly(increment)

    async def text_sent(self) -> None:
        """One text sent now. Never fails its caller: the text has gone."""
        increments = Increments()
        increments.activity(self._clock.now(), TEXTS_FIELD)
        for increment in increments.documents():
            await self._quietly(increment)

    async def _quietly(self, increment: Increment) -> None:
        try:
            await self._store.add(increment, counter_ttl_seconds(increment.day, self._clock.now()))
        except Exception as error:
            log.warning("dashboard: a %s counter was not raised\n%s", increment.group.split("|", 1)[0],
                        redacted_traceback(error))


# ---- the live view ---------------------------------------------------------------------------------------


class RoomOverviews(Protocol):
    """The waiting room's settings and state (WaitingRoomService)."""

    async def overview(self) -> RoomOverview: ...


class PoisonDepths(Protocol):
    """Each app queue's poison depth (PoisonQueueMonitor)."""

    async def depths(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class RoomFigures:
    enabled: bool
    waiting: int
    admit_per_minute: int
    admitted: int
    # The last in the queue waits about this long at the current rate (0 when nobody waits or the room is off).
    longest_wait_seconds: int


@dataclass(frozen=True)
class Dashboard:
    generated_at: dt.datetime
    activity: Activity
    days: tuple[dt.date, ...]
    free_places: tuple[FreePlaces, ...]
    room: RoomFigures
    texts_waiting: int | None  # messages owed texts on the queues; None when the depths cannot be read
    poison: dict[str, int]


def room_figures(overview: RoomOverview) -> RoomFigures:
    settings, state = overview.settings, overview.state
    waiting = state.waiting if settings.enabled else 0
    rate = max(1, settings.admit_per_minute)
    return RoomFigures(enabled=settings.enabled, waiting=waiting, admit_per_minute=settings.admit_per_minute,
                       admitted=state.admitted, longest_wait_seconds=-(-waiting * 60 // rate))


class DashboardService:
    """The read side: a handful of small reads, none of them over bookings; kept `cache_seconds` per instance
    so that many operators watching cost what one does."""

    def __init__(self, store: CounterStore, room: RoomOverviews, poison: PoisonDepths, queues: QueueDepths,
                 text_queues: Sequence[str], clock: Clock, cache_seconds: float = 5.0) -> None:
        self._store = store
        self._room = room
        self._poison = poison
        self._queues = queues
        self._text_queues = tuple(text_queues)
        self._clock = clock
        self._view = Refreshing(self._load, cache_seconds, clock, what="dashboard")

    async def view(self) -> Dashboard:
        return await self._view.get()

    async def _load(self) -> Dashboard:
        now = self._clock.now()
        today = now.astimezone(LONDON).date()
        hour_ago = now - dt.timedelta(hours=1)
        days = places_days(now)
        yesterday = hour_ago.astimezone(LONDON).date()
        today_docs, before_docs, places, overview, poison, waiting = await asyncio.gather(
            self._store.group(activity_group(today)),
            self._store.group(activity_group(yesterday)) if yesterday != today else _no_docs(),
            asyncio.gather(*(self._store.group(places_group(day)) for day in days)),
            self._room.overview(), self._poison.depths(),
            asyncio.gather(*(self._queues.depth(queue) for queue in self._text_queues)))
        previous_hour = [doc for doc in before_docs if doc.key == activity_key(hour_ago)]
        return Dashboard(
            generated_at=now, activity=activity(today_docs, previous_hour, now), days=days,
            free_places=free_places(days, [doc for day in places for doc in day]), room=room_figures(overview),
            texts_waiting=None if any(d is None for d in waiting) else sum(d or 0 for d in waiting), poison=poison)


async def _no_docs() -> list[CounterDoc]:
    return []
