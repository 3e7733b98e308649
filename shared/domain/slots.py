"""Appointment slots cut from a session, with deterministic, readable ids and UTC times."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Final, Self

from pydantic import AwareDatetime, Field, field_validator, model_validator

from shared.domain.policy import DomainModel, ProductCode
from shared.domain.sites import LONDON, Session, SiteId

# Ids are readable rather than hashed: "{siteId}.{yyyymmdd}.{hhmm}.{PRODUCT}" for a slot, and the same
# with ".session" appended for the session that starts at that time. They hold nothing personal, are
# URL-safe (letters, digits, '-', '_', '.') and are stable, so re-creating a session re-creates the same
# slots, idempotently. And because the site id leads, a slot id alone gives the partition key of the
# sites container, so booking a slot is a point read, not a cross-partition query.
#
# On the night the clocks go back, 01:00-01:59 happens twice; a slot starting then carries the zone
# ("0130BST", then "0130GMT") on both occurrences, so the two never share an id and every other time
# keeps its plain form.
_TIME_FORMAT: Final = "%H%M"
_DATE_FORMAT: Final = "%Y%m%d"
_SLOT_ID: Final = re.compile(
    r"^(?P<site>[A-Za-z0-9][A-Za-z0-9_-]{0,63})\.(?P<date>[0-9]{8})\.(?P<time>[0-9]{4})(?P<zone>BST|GMT)?"
    r"\.(?P<product>[A-Z][A-Z0-9_]{0,39})$"
)
_SESSION_SUFFIX: Final = ".session"

Count = Annotated[int, Field(strict=True, ge=0)]


def _wall_time_repeats(local: dt.datetime) -> bool:
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def _time_part(local: dt.datetime) -> str:
    label = local.strftime(_TIME_FORMAT)
    # A skipped time never reaches here (it is no real instant), so an offset change means a repeat.
    return f"{label}{local.tzname()}" if _wall_time_repeats(local) else label


def slot_id(site_id: str, start: dt.datetime, product: str) -> str:
    """The id of the slot of `product` at `site_id` starting at the aware instant `start`."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    local = start.astimezone(LONDON)
    return f"{site_id}.{local.strftime(_DATE_FORMAT)}.{_time_part(local)}.{product}"


def session_id(site_id: str, session_date: dt.date, start: dt.time, product: str) -> str:
    """The id of the session of `product` at `site_id` starting at London wall time `start` that day.

    Session start times never repeat (sites.Session refuses them), so the plain time form is enough.
    """
    return f"{site_id}.{session_date.strftime(_DATE_FORMAT)}.{start.strftime(_TIME_FORMAT)}.{product}{_SESSION_SUFFIX}"


def session_id_of(site_id: str, session: Session) -> str:
    return session_id(site_id, session.date, session.start, session.product)


@dataclass(frozen=True)
class SlotKey:
    """What a slot id says: where, when (London wall clock) and what."""

    site_id: str
    local_date: dt.date
    local_time: dt.time
    zone: str | None  # "BST" or "GMT" only for a wall time that happens twice that day
    product: str

    @property
    def start(self) -> dt.datetime:
        """The slot's start as an aware UTC datetime."""
        local = dt.datetime.combine(self.local_date, self.local_time, tzinfo=LONDON)
        if self.zone is not None and local.tzname() != self.zone:
            local = local.replace(fold=1)
        return local.astimezone(dt.UTC)


def parse_slot_id(value: str) -> SlotKey | None:
    """The parts of a well-formed slot id, or None (so callers answer 404, not 500, to a made-up id)."""
    match = _SLOT_ID.match(value)
    if match is None:
        return None
    try:
        day = dt.datetime.strptime(match["date"], _DATE_FORMAT).date()
        wall = dt.datetime.strptime(match["time"], _TIME_FORMAT).time()
    except ValueError:
        return None
    key = SlotKey(match["site"], day, wall, match["zone"], match["product"])
    # Only the id that slot_id would make for that instant is well formed: no zone on an ordinary time,
    # no missing zone on a repeated one, no time the clocks skip.
    return key if slot_id(key.site_id, key.start, key.product) == value else None


class Slot(DomainModel):
    """One appointment time at a site: how many people it takes and how many have booked it."""

    slot_id: str
    site_id: SiteId
    session_id: str
    product: ProductCode
    start: AwareDatetime
    end: AwareDatetime
    local_date: dt.date  # the Europe/London date of `start`, for day lists and date-range queries
    capacity: Count
    booked: Count = 0

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: dt.datetime) -> dt.datetime:
        # Stored and compared in UTC; shown in Europe/London by whoever displays it.
        return value.astimezone(dt.UTC)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def remaining(slot: Slot) -> int:
    """Places still free; never negative, even if capacity was lowered below what was already booked."""
    return max(0, slot.capacity - slot.booked)


def generate_slots(site_id: str, session: Session) -> tuple[Slot, ...]:
    """The session's slots, in order, each `slotMinutes` of real time from the session's start.

    Stepping in elapsed time keeps every slot the same length across a clock change: a session over the
    March change has no slots in the skipped hour, one over the October change has the repeated hour's
    slots twice, each with its own id.
    """
    length = dt.timedelta(minutes=session.slot_minutes)
    owner = session_id_of(site_id, session)
    slots = []
    for index in range(session.slot_count):
        start = session.starts_at + index * length
        slots.append(
            Slot(
                slot_id=slot_id(site_id, start, session.product),
                site_id=site_id,
                session_id=owner,
                product=session.product,
                start=start,
                end=start + length,
                local_date=start.astimezone(LONDON).date(),
                capacity=session.capacity_per_slot,
            )
        )
    return tuple(slots)
