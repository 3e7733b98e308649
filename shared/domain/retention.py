"""How long personal data is kept once its use is over: the retention rule (docs/security.md, "Retention").

A booking document holds a person's name, date of birth, NHS number and contact details. They are
needed while the booking can still be acted on (looked up, changed, checked in, vaccinated, marked as
missed, reminded) and for a short while after, to answer questions about it; the clinical record of a
dose given lives in the vaccination record and in NIMS, not here. So each booking document carries a
Cosmos DB `ttl` set on every write from what it is now, and expires on its own:

- pending, or owing work (events not yet relayed, follow-up not yet done, a move in flight): never,
  until that is finished (the repair timer and the outbox relay must find it);
- released (it never became a booking): `AFTER_RELEASE` after it was released;
- cancelled: `AFTER_CANCELLATION` after the cancellation;
- otherwise (confirmed, checked in, vaccinated, did not attend): `AFTER_LAST_APPOINTMENT` after its
  last appointment's start, and never less than `MINIMUM` from the write.

Cosmos DB counts `ttl` from the document's last write, so a later write (the relay marking an event
sent, a status recorded at the site) sets the clock again from the new state.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord

# Cosmos DB's "never expires" for a document in a container whose TTL is on.
NEVER: Final = -1
AFTER_LAST_APPOINTMENT: Final = dt.timedelta(days=30)
AFTER_CANCELLATION: Final = dt.timedelta(days=30)
AFTER_RELEASE: Final = dt.timedelta(days=7)
# Longer than the Idempotency-Key window (24 h): a retried request still finds its first answer.
MINIMUM: Final = dt.timedelta(days=2)


def _seconds(until: dt.datetime, now: dt.datetime) -> int:
    return max(math.ceil((until - now).total_seconds()), math.ceil(MINIMUM.total_seconds()))


def booking_ttl(record: BookingRecord, now: dt.datetime) -> int:
    """Seconds from this write until the booking document expires, or NEVER."""
    if record.status == BookingStatus.PENDING or record.outbox or record.cleanup is not None or record.move is not None:
        return NEVER
    if record.status == BookingStatus.RELEASED:
        return _seconds(now + AFTER_RELEASE, now)
    if record.status == BookingStatus.CANCELLED:
        return _seconds(now + AFTER_CANCELLATION, now)
    last = max((a.start for a in record.appointments), default=now)
    return _seconds(last + AFTER_LAST_APPOINTMENT, now)


def entry_ttl(appointment: Appointment, now: dt.datetime, retired: bool = False) -> int:
    """Seconds until an appointment's listing at another site (it carries the contact details) expires:
    as a booking's, counted from its own appointment, or from now once it is cancelled or moved."""
    if retired:
        return _seconds(now + AFTER_CANCELLATION, now)
    return _seconds(appointment.start + AFTER_LAST_APPOINTMENT, now)


# Queue messages. A booking event carries the person's mobile and email: one not handled within this
# has been handled or poisoned long since, and a text days late is no use to anyone.
EVENT_MESSAGE_TTL: Final = dt.timedelta(days=3)
# A message the Functions host gave up on (`<queue>-poison`): kept for this long to be looked at and
# replayed (`python -m devhost.poison`), then gone. The host in Azure writes poison messages with the
# Storage default of 7 days and no setting changes it; devhost writes them the same way.
POISON_MESSAGE_TTL: Final = dt.timedelta(days=7)
