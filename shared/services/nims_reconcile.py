"""What a register change does to bookings, and the repair of slot counters (docs/nims.md, "Reconciliation").

Reconciliation is told which people a file changed and reads nothing else: for each of their bookings still to
happen, the register's history decides (`judge_booking`); a dose the register shows given is cancelled with the
text "our records show you have had this dose", an appointment the rules no longer allow is released with a
cancellation text, through the booking's own cancel (its place and dose claim given back, one event per change,
so one text). The slot recount reads the slots of recent and coming days and mends any whose `booked` is not the
number of its holds; it logs counts, never people.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.nims import judge_booking
from shared.domain.sites import LONDON
from shared.ports.bookings import BookingRecords
from shared.ports.common import Clock
from shared.ports.nims import PersonOnRegister, SlotCounters
from shared.services.booking import BookingService, CancelNotice
from shared.services.errors import ChangedMeanwhile, NotActive
from shared.services.policy import PolicyService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileTally:
    bookings: int = 0  # bookings of the people changed that were looked at
    given: int = 0  # appointments cancelled because the register shows the dose given
    released: int = 0  # appointments released because the rules no longer allow them

    def __add__(self, other: ReconcileTally) -> ReconcileTally:
        return ReconcileTally(self.bookings + other.bookings, self.given + other.given,
                              self.released + other.released)


class RegisterReconciler:
    def __init__(self, records: BookingRecords, bookings: BookingService, policies: PolicyService, clock: Clock,
                 concurrency: int = 32) -> None:
        self._records = records
        self._bookings = bookings
        self._policies = policies
        self._clock = clock
        self._concurrency = concurrency

    async def reconcile(self, people: Sequence[PersonOnRegister]) -> ReconcileTally:
        """Judge the bookings of these people (and nobody else's) against their register records now."""
        held = {(claim.reference, claim.home_site_id): person for person in people
                for claim in person.claims.values()}
        if not held:
            return ReconcileTally()
        policy = (await self._policies.current()).policy
        today = self._clock.now().astimezone(LONDON).date()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(reference: str, home_site_id: str, person: PersonOnRegister) -> ReconcileTally:
            async with gate:
                stored = await self._records.get(reference, home_site_id)
                if stored is None:
                    return ReconcileTally()
                record = person.record
                verdict = judge_booking(stored.record, record.vaccinations, record.date_of_birth, policy, today)
                if not verdict.changes:
                    return ReconcileTally(bookings=1)
                try:
                    await self._bookings.cancel_stored(stored, CancelNotice(
                        doses=frozenset(verdict.given + verdict.broken), given=frozenset(verdict.given)))
                except (NotActive, ChangedMeanwhile):
                    # Checked in or finished meanwhile, or changing under us: the next change to this
                    # person reconciles again; nothing was taken back.
                    log.info("reconciliation: booking %s changed meanwhile; left as it is", reference)
                    return ReconcileTally(bookings=1)
                return ReconcileTally(1, len(verdict.given), len(verdict.broken))

        tallies = await asyncio.gather(*(one(ref, home, person) for (ref, home), person in held.items()))
        total = sum(tallies, ReconcileTally())
        if total.given or total.released:
            log.info("reconciliation: %d booking(s) of %d people judged; %d appointment(s) cancelled as given, "
                     "%d released", total.bookings, len(people), total.given, total.released)
        return total


@dataclass(frozen=True)
class RecountTally:
    slots: int = 0
    drifted: int = 0
    mended: int = 0


class SlotRecount:
    """Slot counters against their holds, for the days around today (docs/nims.md, "Repair")."""

    def __init__(self, counters: SlotCounters, clock: Clock, days_before: int = 2, days_after: int = 14) -> None:
        self._counters = counters
        self._clock = clock
        self._before = dt.timedelta(days=days_before)
        self._after = dt.timedelta(days=days_after)

    async def run(self) -> RecountTally:
        today = self._clock.now().astimezone(LONDON).date()
        first, last = today - self._before, today + self._after
        slots = drifted = mended = 0
        async for slot in self._counters.between(first, last):
            slots += 1
            if slot.booked != slot.holds:
                drifted += 1
                mended += await self._counters.mend(slot)
        tally = RecountTally(slots, drifted, mended)
        log.info("slot recount %s..%s: %d slot(s), %d drifted, %d mended", first, last, slots, drifted, mended)
        return tally
