"""The operator dashboard's counters: which counter each booking event moves, and the figures read back.

Counters live in small documents, each a flat map of field -> count (`CounterDoc`):
- activity, one document per London hour (and writer shard): bookings made each minute (`m00`..`m59`),
  each booking event type, texts sent;
- places, one document per London day of appointment (and shard): places opened (`cap.REGION.PRODUCT`)
  and places taken (`bkd.REGION.PRODUCT`), so free = opened - taken.
Everything here is pure: `now` is passed in; the I/O is the service's (shared/services/dashboard.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from shared.domain.postcodes import parse_postcode
from shared.domain.sites import LONDON, Session

# NHS England's seven regions, by postcode area. Regions follow local authority boundaries and postcode
# areas do not, so an area that straddles two regions is given to the one that holds most of it: a
# dashboard-level approximation, not a commissioning boundary.
REGIONS: Final[dict[str, str]] = {
    "LON": "London",
    "SE": "South East",
    "SW": "South West",
    "EOE": "East of England",
    "MID": "Midlands",
    "NEY": "North East and Yorkshire",
    "NW": "North West",
    "OTHER": "Outside England",
}
_AREAS: Final[dict[str, tuple[str, ...]]] = {
    "LON": ("E", "EC", "N", "NW", "SE", "SW", "W", "WC", "BR", "CR", "DA", "EN", "HA", "IG", "KT", "RM", "SM",
            "TW", "UB"),
    "SE": ("BN", "CT", "GU", "HP", "ME", "MK", "OX", "PO", "RG", "RH", "SL", "SO", "TN"),
    "SW": ("BA", "BH", "BS", "DT", "EX", "GL", "PL", "SN", "SP", "TA", "TQ", "TR"),
    "EOE": ("AL", "CB", "CM", "CO", "IP", "LU", "NR", "PE", "SG", "SS", "WD"),
    "MID": ("B", "CV", "DE", "DY", "HR", "LE", "LN", "NG", "NN", "ST", "SY", "TF", "WR", "WS", "WV"),
    "NEY": ("BD", "DH", "DL", "DN", "HD", "HG", "HU", "HX", "LS", "NE", "S", "SR", "TS", "WF", "YO"),
    "NW": ("BB", "BL", "CA", "CH", "CW", "FY", "L", "LA", "M", "OL", "PR", "SK", "WA", "WN"),
}
_REGION_OF_AREA: Final = {area: region for region, areas in _AREAS.items() for area in areas}

ACTIVITY: Final = "activity"
PLACES: Final = "places"
BOOKED_FIELD: Final = "BookingConfirmed"
TEXTS_FIELD: Final = "textsSent"
PLACES_DAYS: Final = 7


def region_of(postcode: str) -> str:
    """The NHS England region code of a postcode (or district); OTHER outside England or when unparseable."""
    parts = parse_postcode(postcode)
    return _REGION_OF_AREA.get(parts.area, "OTHER") if parts is not None else "OTHER"


def london_minute(at: dt.datetime) -> dt.datetime:
    return at.astimezone(LONDON).replace(second=0, microsecond=0)


def activity_group(day: dt.date) -> str:
    return f"{ACTIVITY}|{day.isoformat()}"


def activity_key(at: dt.datetime) -> str:
    """The hour document an instant falls in: London date and hour."""
    local = at.astimezone(LONDON)
    return f"{activity_group(local.date())}T{local.hour:02d}"


def places_group(day: dt.date) -> str:
    return f"{PLACES}|{day.isoformat()}"


def _places_field(kind: str, region: str, product: str) -> str:
    return f"{kind}.{region}.{product}"


# How long a counter document is kept after the day it counts: today's and a week back stay readable.
KEEP_AFTER: Final = dt.timedelta(days=8)


@dataclass(frozen=True)
class Increment:
    """Counts to add to one counter document (`group` is its partition, `key` its id before the shard,
    `day` the London day it counts, which decides how long it is kept)."""

    group: str
    key: str
    day: dt.date
    counts: Mapping[str, int]


def counter_ttl_seconds(day: dt.date, now: dt.datetime) -> int:
    """Seconds a counter document of `day` is kept from `now`: until KEEP_AFTER past its day."""
    today = now.astimezone(LONDON).date()
    return int((max(day, today) - today + KEEP_AFTER).total_seconds())


def minute_field(at: dt.datetime) -> str:
    """The activity field of bookings made in the London minute of `at`."""
    return f"m{london_minute(at).minute:02d}"


@dataclass
class Increments:
    """Counts to add, gathered over a batch of events so that each document gets one write per batch."""

    by_doc: dict[tuple[str, str, dt.date], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, group: str, key: str, day: dt.date, name: str, n: int = 1) -> None:
        if n:
            self.by_doc[(group, key, day)][name] += n

    def activity(self, at: dt.datetime, name: str, n: int = 1) -> None:
        """Count `name` in the hour of `at`."""
        day = at.astimezone(LONDON).date()
        self.add(activity_group(day), activity_key(at), day, name, n)

    def documents(self) -> list[Increment]:
        return [Increment(group, key, day, {k: v for k, v in counts.items() if v})
                for (group, key, day), counts in sorted(self.by_doc.items()) if any(counts.values())]


def place_taken(increments: Increments, start: dt.datetime, site_postcode: str, product: str, n: int) -> None:
    """A place on the appointment's London day taken (n 1) or given back (n -1)."""
    day = start.astimezone(LONDON).date()
    group = places_group(day)
    increments.add(group, group, day, _places_field("bkd", region_of(site_postcode), product), n)


def session_increment(site_postcode: str, session: Session, sign: int) -> Increment:
    """Places a session opens (sign 1) or withdraws (sign -1) on its day."""
    group = places_group(session.date)
    places = session.slot_count * session.capacity_per_slot
    return Increment(group, group, session.date,
                     {_places_field("cap", region_of(site_postcode), session.product): sign * places})


# ---- reading back ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterDoc:
    """One stored counter document (its shards summed or not): the hour or day it counts, and its counts."""

    key: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class HourActivity:
    hour: int  # London hour of the day, 0..23
    booked: int
    cancelled: int
    texts_sent: int


@dataclass(frozen=True)
class Activity:
    """Today's figures (London day) and the last 60 minutes'."""

    booked_last_hour: int
    booked_today: int
    cancelled_today: int
    rescheduled_today: int
    vaccinated_today: int
    texts_sent_last_hour: int
    texts_sent_today: int
    hours: tuple[HourActivity, ...]


def _summed(docs: Iterable[CounterDoc]) -> dict[str, Counter[str]]:
    by_key: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in docs:
        by_key[doc.key].update(doc.counts)
    return by_key


def activity(today_docs: Iterable[CounterDoc], previous_hour_docs: Iterable[CounterDoc], now: dt.datetime) -> Activity:
    """Today's hour documents (every shard) and, for the last 60 minutes, those of the hour before this one.

    Texts are counted per hour, so "texts in the last hour" is this hour so far and the hour before, scaled
    to the minutes of it that fall in the last 60.
    """
    local = london_minute(now)
    hours = _summed(today_docs)
    before = _summed(previous_hour_docs)
    this_key, last_key = activity_key(now), activity_key(now - dt.timedelta(hours=1))
    current, previous = hours.get(this_key, Counter()), hours.get(last_key) or before.get(last_key, Counter())
    booked_last_hour = sum(current[f"m{m:02d}"] for m in range(local.minute + 1)) + \
        sum(previous[f"m{m:02d}"] for m in range(local.minute + 1, 60))
    texts_last_hour = current[TEXTS_FIELD] + round(previous[TEXTS_FIELD] * (59 - local.minute) / 60)
    today = Counter[str]()
    for counts in hours.values():
        today.update(counts)
    per_hour = tuple(
        HourActivity(h, hours.get(f"{activity_group(local.date())}T{h:02d}", Counter())[BOOKED_FIELD],
                     hours.get(f"{activity_group(local.date())}T{h:02d}", Counter())["BookingCancelled"],
                     hours.get(f"{activity_group(local.date())}T{h:02d}", Counter())[TEXTS_FIELD])
        for h in range(24))
    return Activity(booked_last_hour=booked_last_hour, booked_today=today[BOOKED_FIELD],
                    cancelled_today=today["BookingCancelled"], rescheduled_today=today["BookingRescheduled"],
                    vaccinated_today=today["VaccinationRecorded"], texts_sent_last_hour=texts_last_hour,
                    texts_sent_today=today[TEXTS_FIELD], hours=per_hour)


@dataclass(frozen=True)
class FreePlaces:
    """Free places of one region and product on each of the coming days (today first)."""

    region: str
    product: str
    by_day: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.by_day)


def places_days(now: dt.datetime) -> tuple[dt.date, ...]:
    today = now.astimezone(LONDON).date()
    return tuple(today + dt.timedelta(days=n) for n in range(PLACES_DAYS))


def free_places(days: tuple[dt.date, ...], docs: Iterable[CounterDoc]) -> tuple[FreePlaces, ...]:
    """Opened minus taken per region, product and day; never below zero (a late cancellation's event can
    arrive after its session was withdrawn)."""
    by_day = _summed(docs)
    free: dict[tuple[str, str], list[int]] = {}
    for index, day in enumerate(days):
        counts = by_day.get(places_group(day), Counter())
        for name, opened in counts.items():
            kind, region, product = name.split(".", 2)
            if kind != "cap":
                continue
            row = free.setdefault((region, product), [0] * len(days))
            row[index] = max(0, opened - counts[_places_field("bkd", region, product)])
    return tuple(FreePlaces(region, product, tuple(row)) for (region, product), row in sorted(free.items()))
