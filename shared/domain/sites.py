"""Vaccination sites, the age bands they serve, and the sessions they open, in Europe/London local time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Final, Self, TypeVar
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from shared.domain.policy import DomainModel, ProductCode
from shared.domain.postcodes import normalise_postcode

# Decisions taken where the briefs are silent, and why:
#
# * Age bands: `ageBands` is a non-empty list of `{"minAge": int, "maxAge": int | null}`, both ends
#   inclusive, null meaning no upper limit; a site serves an age when any band admits it, so
#   `[{"minAge": 18, "maxAge": null}]` is an adults-only pharmacy and `[{"minAge": 12, "maxAge": 15},
#   {"minAge": 50, "maxAge": null}]` a site running two programmes. The bands are the site's own limit on
#   top of the policy's product `minAge`, never a way round it.
# * Session times are wall-clock Europe/London times on the session's date, on whole minutes. A time the
#   clocks skip (01:30 on the last Sunday of March) or pass twice (01:30 on the last Sunday of October)
#   is refused as a start or end: guessing which was meant would put people at a site at the wrong hour.
#   A session may still span the change; its slots then follow real elapsed time (slots.py).
# * Slots: the session is cut into `slotMinutes` pieces from its start; when the length is not a
#   multiple, the last partial piece is dropped rather than offered as a shorter appointment. A session
#   must hold at least one whole slot.
# * Product codes are upper-cased on the way in ("pfizer" is PFIZER), as vaccination records are.

LONDON: Final = ZoneInfo("Europe/London")
MAX_AGE: Final = 130


def _upper_code(value: Any) -> Any:
    # Non-strings pass through untouched so that strict validation reports them; so do non-ASCII ones,
    # which upper-casing could turn into letters ("ß" is "SS").
    return value.strip().upper() if isinstance(value, str) and value.isascii() else value


# What the OpenAPI document says a product code in a request may be: any case, surrounding spaces.
_SPACE = r"[\t-\r\x1c-\x20]*"
SiteProduct = Annotated[ProductCode, BeforeValidator(_upper_code), WithJsonSchema(
    {"type": "string", "pattern": f"^{_SPACE}[A-Za-z][A-Za-z0-9_]{{0,39}}{_SPACE}$"})]
# Site ids go into slot and session ids and URLs: letters, digits, '-' and '_' only, never '.', which
# separates the parts of a slot id.
SiteId = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Age = Annotated[int, Field(strict=True, ge=0, le=MAX_AGE)]


def _non_blank(name: str) -> str:
    if not name.strip():
        raise ValueError("name must not be blank")
    return name.strip()


CodesT = TypeVar("CodesT", bound=Sequence[str])


def unique_codes(codes: CodesT) -> CodesT:
    """Refuses a list of product codes that names one twice."""
    if len(set(codes)) != len(codes):
        raise ValueError("products lists a code more than once")
    return codes


SiteName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_non_blank)]


class SiteType(StrEnum):
    """The kinds of site, as the API spells them."""

    VACCINATION_CENTRE = "vaccinationCentre"
    PHARMACY = "pharmacy"
    GP_PRACTICE = "gpPractice"


class AgeBand(DomainModel):
    """Ages a site serves, both ends inclusive; `max_age` None means no upper limit."""

    min_age: Age
    max_age: Age | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.max_age is not None and self.max_age < self.min_age:
            raise ValueError("maxAge must not be below minAge")
        return self

    def admits(self, age: int) -> bool:
        return self.min_age <= age and (self.max_age is None or age <= self.max_age)


class Location(DomainModel):
    """A point in WGS84 decimal degrees."""

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class Site(DomainModel):
    """A place that vaccinates: what it offers, to which ages, and where it is."""

    site_id: SiteId
    name: SiteName
    type: SiteType
    ods_code: Annotated[str, BeforeValidator(_upper_code), Field(pattern=r"^[A-Z0-9]{3,10}$")]
    postcode: str
    location: Location
    products: Annotated[tuple[SiteProduct, ...], Field(min_length=1), AfterValidator(unique_codes)]
    age_bands: Annotated[tuple[AgeBand, ...], Field(min_length=1)]

    @field_validator("postcode")
    @classmethod
    def _postcode_is_full(cls, postcode: str) -> str:
        return normalise_postcode(postcode)


    def offers(self, product: str) -> bool:
        return product in self.products

    @property
    def in_national_search(self) -> bool:
        """A GP practice's clinics are booked only through its own invitations, never found nationally."""
        return self.type != SiteType.GP_PRACTICE

    def serves_age(self, age: int) -> bool:
        """Whether any of the site's age bands admits a person of this age."""
        return serves_age(self.age_bands, age)


def serves_age(age_bands: tuple[AgeBand, ...], age: int) -> bool:
    """Whether any of these age bands admits a person of this age."""
    return any(band.admits(age) for band in age_bands)


def london_datetime(day: dt.date, wall_time: dt.time) -> dt.datetime:
    """The aware Europe/London datetime for a wall-clock time on a day (the first one when it repeats)."""
    return dt.datetime.combine(day, wall_time, tzinfo=LONDON)


def london_date(instant: dt.datetime) -> dt.date:
    """The Europe/London calendar date of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(LONDON).date()


def wall_time_problem(day: dt.date, wall_time: dt.time) -> str | None:
    """Why this London wall-clock time cannot name one instant on this day, or None when it can."""
    local = london_datetime(day, wall_time)
    if local.astimezone(dt.UTC).astimezone(LONDON).replace(tzinfo=None) != local.replace(tzinfo=None):
        return "does not exist on that day: the clocks go forward"
    if local.replace(fold=1).utcoffset() != local.utcoffset():
        return "happens twice on that day: the clocks go back"
    return None


class Session(DomainModel):
    """A block of appointments of one product at a site on one day, cut into equal slots."""

    date: dt.date
    start: dt.time
    end: dt.time
    slot_minutes: Annotated[int, Field(strict=True, ge=5, le=120)]
    capacity_per_slot: Annotated[int, Field(strict=True, ge=1, le=1000)]
    product: SiteProduct

    @field_validator("start", "end")
    @classmethod
    def _whole_minutes_of_wall_clock(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("give the Europe/London wall-clock time without an offset")
        if value.second or value.microsecond:
            raise ValueError("times are whole minutes")
        return value

    @model_validator(mode="after")
    def _holds_a_slot(self) -> Self:
        for name, value in (("start", self.start), ("end", self.end)):
            if (problem := wall_time_problem(self.date, value)) is not None:
                raise ValueError(f"{name} {value:%H:%M} {problem}")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.slot_count == 0:
            raise ValueError("the session must be at least one slot long")
        return self

    @property
    def starts_at(self) -> dt.datetime:
        """The session's start as an aware UTC datetime."""
        return london_datetime(self.date, self.start).astimezone(dt.UTC)

    @property
    def ends_at(self) -> dt.datetime:
        """The session's end as an aware UTC datetime."""
        return london_datetime(self.date, self.end).astimezone(dt.UTC)

    @property
    def slot_count(self) -> int:
        """Whole slots in the session's real (elapsed) length; a partial last slot does not count."""
        return int((self.ends_at - self.starts_at) // dt.timedelta(minutes=self.slot_minutes))

    def overlaps(self, other: Session) -> bool:
        """Whether the two sessions offer the same product at overlapping times.

        Slot ids come from the start time and product, so two such sessions at one site could make the
        same slot twice; the service refuses the second.
        """
        return self.product == other.product and self.starts_at < other.ends_at and other.starts_at < self.ends_at
