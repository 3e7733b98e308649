"""Six-field NCRONTAB schedules (and TimeSpan intervals) as the Functions timer trigger reads them."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass
from typing import Protocol

from devhost.hostconfig import parse_timespan

_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
# Nine years always contains a 29 February, the rarest date a schedule can name.
_SEARCH_DAYS = 366 * 9


class Schedule(Protocol):
    """When a timer fires next."""

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first occurrence strictly after moment."""
        ...


def _value(text: str, low: int, names: tuple[str, ...]) -> int:
    if names and text[:1].isalpha():
        lowered = text.lower()
        # NCrontab accepts a name by its first three letters or in full: "Mon" or "Monday".
        for index, name in enumerate(names):
            if lowered in (name[:3], name):
                return index + low
        raise ValueError(f"unknown name {text!r}")
    return int(text)


def _field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> tuple[int, ...]:
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError(f"step must be positive in {part!r}")
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, last = span.split("-", 1)
            start, end = _value(first, low, names), _value(last, low, names)
        else:
            start = _value(span, low, names)
            # "5/15" means from 5 to the end of the range in steps of 15.
            end = high if slash else start
        if not low <= start <= end <= high:
            raise ValueError(f"{part!r} is outside {low}-{high} or reversed")
        values.update(range(start, end + 1, step))
    return tuple(sorted(values))


@dataclass(frozen=True)
class CronSchedule:
    """{second} {minute} {hour} {day} {month} {day-of-week}; day and day-of-week must BOTH match.

    That conjunction is NCrontab's rule (classic cron and croniter's default take either), so
    "0 0 9 1-7 * MON" is the first Monday of each month.
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(f"NCRONTAB needs six fields (second first), got {len(fields)}: {expression!r}")
        schedule = cls(
            expression=expression,
            seconds=_field(fields[0], 0, 59),
            minutes=_field(fields[1], 0, 59),
            hours=_field(fields[2], 0, 23),
            days=frozenset(_field(fields[3], 1, 31)),
            months=frozenset(_field(fields[4], 1, 12, _MONTHS)),
            weekdays=frozenset(_field(fields[5], 0, 6, _WEEKDAYS)),
        )
        schedule.next_after(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # "30 February" fails here
        return schedule

    def _first_time_from(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        for h in self.hours[bisect_left(self.hours, hour) :]:
            if h > hour:
                return h, self.minutes[0], self.seconds[0]
            for m in self.minutes[bisect_left(self.minutes, minute) :]:
                if m > minute:
                    return h, m, self.seconds[0]
                index = bisect_left(self.seconds, second)
                if index < len(self.seconds):
                    return h, m, self.seconds[index]
        return None

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        start = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        day = start.date()
        for offset in range(_SEARCH_DAYS):
            date = day + dt.timedelta(days=offset)
            if (
                date.month not in self.months
                or date.day not in self.days
                or (date.weekday() + 1) % 7 not in self.weekdays
            ):
                continue
            found = self._first_time_from(start.hour, start.minute, start.second) if offset == 0 else (
                self.hours[0], self.minutes[0], self.seconds[0]
            )
            if found is not None:
                return dt.datetime.combine(date, dt.time(*found), tzinfo=moment.tzinfo)
        raise ValueError(f"{self.expression!r} never occurs")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule ("00:05:00"): every interval, counted from the previous occurrence."""

    interval: dt.timedelta

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        return moment + self.interval


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    """A schedule from a timer trigger's `schedule`: NCRONTAB, or a TimeSpan as the host also accepts."""
    if len(expression.split()) == 6:
        return CronSchedule.parse(expression)
    try:
        seconds = parse_timespan(expression, 0.0)
    except ValueError:
        raise ValueError(
            f"{expression!r} is neither a six-field NCRONTAB expression nor a TimeSpan"
        ) from None
    if seconds <= 0:
        raise ValueError(f"a TimeSpan schedule must be positive: {expression!r}")
    return IntervalSchedule(dt.timedelta(seconds=seconds))


def shortest_interval(schedule: CronSchedule | IntervalSchedule, around: dt.datetime) -> dt.timedelta:
    """The gap between the next two occurrences: the host only monitors schedules of a minute or more."""
    first = schedule.next_after(around)
    return schedule.next_after(first) - first
