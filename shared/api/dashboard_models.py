"""The operator dashboard on the wire: `GET /api/admin/dashboard`."""

from __future__ import annotations

import datetime as dt

from shared.api.models import ApiModel


class HourFigures(ApiModel):
    hour: int  # London hour of the day, 0..23
    booked: int
    cancelled: int
    texts_sent: int


class BookingFigures(ApiModel):
    last_hour: int
    today: int
    cancelled_today: int
    rescheduled_today: int
    vaccinated_today: int
    by_hour: list[HourFigures]  # today, London hours 0..23


class FreePlacesRow(ApiModel):
    region: str  # NHS England region code (LON, SE, SW, EOE, MID, NEY, NW; OTHER outside England)
    region_name: str
    product: str
    by_day: list[int]  # one per date of `FreePlacesFigures.days`
    total: int


class FreePlacesFigures(ApiModel):
    days: list[str]  # today and the next six London dates, YYYY-MM-DD
    rows: list[FreePlacesRow]
    total: int


class WaitingRoomFigures(ApiModel):
    enabled: bool
    waiting: int
    admit_per_minute: int
    admitted: int
    longest_wait_seconds: int


class TextFigures(ApiModel):
    sent_last_hour: int
    sent_today: int
    waiting: int | None  # messages owed texts on the queues; null when they cannot be read


class PoisonQueueFigure(ApiModel):
    queue: str
    depth: int


class DashboardAnswer(ApiModel):
    """Counters and queue properties only, never a scan of bookings; up to a few seconds old (docs/dashboard.md)."""

    generated_at: dt.datetime
    bookings: BookingFigures
    free_places: FreePlacesFigures
    waiting_room: WaitingRoomFigures
    texts: TextFigures
    poison_queues: list[PoisonQueueFigure]
