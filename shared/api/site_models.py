"""Request and response bodies of the site, session, search, slot, staff and day-list routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from shared.api.fields import OdsCode, Postcode, PostcodeDistrict
from shared.api.models import ApiModel
from shared.domain.sites import AgeBand, Location, Session, SiteId, SiteName, SiteProduct, SiteType, unique_codes

MAX_RADIUS_KM = 100.0
DEFAULT_RADIUS_KM = 10.0
MAX_SEARCH_RESULTS = 100
DEFAULT_SEARCH_RESULTS = 50
DEFAULT_SLOT_DAYS = 28
MAX_SLOT_DAYS = 60


class QueryModel(ApiModel):
    """A query string: an empty parameter (`?product=`, as HTML forms send it) means the parameter is absent."""

    query_string: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != ""}
        return data


# ---- sites ------------------------------------------------------------------------------------


class SiteRegistration(ApiModel):
    """POST /api/admin/sites. The site id is the ODS code; `location` comes from the postcode when absent."""

    name: SiteName
    type: SiteType
    ods_code: OdsCode
    postcode: Postcode
    products: Annotated[list[SiteProduct], Field(min_length=1, max_length=20), AfterValidator(unique_codes)]
    # No band given means no limit of the site's own: the policy's product minimum ages still apply.
    age_bands: Annotated[list[AgeBand], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: [AgeBand(min_age=0)])
    location: Location | None = None


class SiteRegistered(ApiModel):
    site_id: str


# ---- sessions ---------------------------------------------------------------------------------


class OpenSessionRequest(Session):
    """POST /api/admin/sites/{siteId}/sessions: London wall-clock times on `date`, cut into equal slots."""


class SessionOpened(ApiModel):
    session_id: str
    site_id: str
    slot_count: int


class CancelSessionRequest(ApiModel):
    """Cancelling a session that holds bookings also cancels them (with notice) only when asked to."""

    cancel_bookings: bool = False


class SessionCancelled(ApiModel):
    session_id: str
    status: Literal["cancelled"] = "cancelled"
    slots_cancelled: int
    bookings_cancelled: int


class SessionsQuery(QueryModel):
    date: dt.date | None = None


class SessionListed(ApiModel):
    session_id: str
    date: dt.date
    start: str  # London wall-clock HH:MM
    end: str
    slot_minutes: int
    capacity_per_slot: int
    product: str
    places: int
    booked: int


class SessionsAnswer(ApiModel):
    """GET /api/admin/sites/{siteId}/sessions?date=: the site's open sessions that day (staff screens)."""

    site_id: str
    date: dt.date
    sessions: list[SessionListed]


# ---- search -----------------------------------------------------------------------------------


class SiteSearchQuery(QueryModel):
    postcode: PostcodeDistrict  # never a full postcode: the query string is in every log (docs/security.md)
    radius_km: Annotated[float, Field(gt=0, le=MAX_RADIUS_KM, allow_inf_nan=False)] = DEFAULT_RADIUS_KM
    product: SiteProduct | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_RESULTS)] = DEFAULT_SEARCH_RESULTS


class SiteSummary(ApiModel):
    site_id: str
    name: str
    type: SiteType
    distance_km: float
    products: list[str]
    next_available_date: dt.date | None
    postcode: str


class SiteSearchAnswer(ApiModel):
    sites: list[SiteSummary]


class SlotQuery(QueryModel):
    """Dates are Europe/London calendar dates, both ends inclusive."""

    from_: dt.date | None = Field(default=None, alias="from")
    to: dt.date | None = None
    product: SiteProduct | None = None


class SlotSummary(ApiModel):
    slot_id: str
    start: dt.datetime
    end: dt.datetime
    product: str
    remaining: int


class SlotsAnswer(ApiModel):
    slots: list[SlotSummary]


# ---- staff and the day list -------------------------------------------------------------------


class StaffAssignmentRequest(ApiModel):
    """PUT /api/admin/staff/{userId}: the whole list of sites the user may act for (replaces the last one)."""

    sites: Annotated[list[SiteId], Field(max_length=500, json_schema_extra={"uniqueItems": True})]

    @field_validator("sites")
    @classmethod
    def _sites_are_unique(cls, sites: list[str]) -> list[str]:
        if len(set(sites)) != len(sites):
            raise ValueError("sites lists a site more than once")
        return sites


class StaffAssignment(ApiModel):
    user_id: str
    sites: list[str]


class DayListQuery(QueryModel):
    date: dt.date | None = None


class DayListEntry(ApiModel):
    reference: str
    dose: int
    slot_id: str
    start: dt.datetime
    product: str
    status: str
    name: str | None


class DayListAnswer(ApiModel):
    site_id: str
    date: dt.date
    appointments: list[DayListEntry]
