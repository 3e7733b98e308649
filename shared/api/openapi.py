"""The OpenAPI 3.1 document, generated from the same pydantic models the routes validate with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.booking_models import BookingAnswer, BookingRequest, LookupRequest, PersonProof, RescheduleRequest
from shared.api.dashboard_models import DashboardAnswer
from shared.api.gp_models import (
    InvitationAnswer,
    InvitationBookingRequest,
    InvitationRunAnswer,
    InvitationRunRequest,
    UploadsAnswer,
)
from shared.api.models import (
    EligibilityAnswer,
    EligibilityRequest,
    HealthAnswer,
    NimsImportAnswer,
    NimsImportRequest,
    OptOutAnswer,
    OptOutRequest,
    PolicyDocument,
)
from shared.api.problems import Problem
from shared.api.site_models import (
    CancelSessionRequest,
    DayListAnswer,
    DayListQuery,
    OpenSessionRequest,
    SessionCancelled,
    SessionOpened,
    SessionsAnswer,
    SessionsQuery,
    SiteRegistered,
    SiteRegistration,
    SiteSearchAnswer,
    SiteSearchQuery,
    SlotQuery,
    SlotsAnswer,
    StaffAssignment,
    StaffAssignmentRequest,
)
from shared.api.site_operation_models import (
    AuditAnswer,
    AuditQuery,
    CheckInAnswer,
    CheckInRequest,
    SessionMoveAnswer,
    SessionMoveRequest,
    VaccinationAnswer,
    VaccinationRequest,
)
from shared.api.waiting_room_models import (
    QueueJoinRequest,
    QueueStatusAnswer,
    QueueStatusRequest,
    WaitingRoomSettingsRequest,
    WaitingRoomView,
)


@dataclass(frozen=True)
class Operation:
    """One route of the contract. Path parameters come from the path's `{name}`s; `query` is the model
    the route validates its query string with; `also`: other statuses answered with `response`."""

    method: str
    path: str
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    staff: bool = False
    query: type[BaseModel] | None = None
    also: tuple[int, ...] = ()
    media: str | None = None  # a success answered as this media type (a string), not JSON


OPERATIONS: list[Operation] = [
    Operation("get", "/api/health", "Whether the app can reach its stores (503: one of them is not)", "health",
              response=HealthAnswer, also=(503,)),
    Operation("post", "/api/eligibility", "May this person book, which dose, from when", "citizen",
              request=EligibilityRequest, response=EligibilityAnswer),
    Operation("post", "/api/admin/nims/patients", "Upsert NIMS records, each validated alone", "admin",
              request=NimsImportRequest, response=NimsImportAnswer, staff=True),
    Operation("get", "/api/admin/policy", "The campaign policy in force", "admin", response=PolicyDocument,
              staff=True),
    Operation("put", "/api/admin/policy", "Replace the campaign policy", "admin", request=PolicyDocument,
              response=PolicyDocument, staff=True),
]

# Waiting room
OPERATIONS.extend([
    Operation("post", "/api/queue/join", "Join the waiting room: a signed ticket, a place and an estimate",
              "citizen", request=QueueJoinRequest, response=QueueStatusAnswer),
    Operation("post", "/api/queue/status", "A ticket's place and estimate; its admission token once admitted",
              "citizen", request=QueueStatusRequest, response=QueueStatusAnswer),
    Operation("get", "/api/admin/waiting-room", "The waiting-room settings and live figures", "admin",
              response=WaitingRoomView, staff=True),
    Operation("put", "/api/admin/waiting-room", "Switch the waiting room on or off and set its admission rate",
              "admin", request=WaitingRoomSettingsRequest, response=WaitingRoomView, staff=True),
])

# Sites (docs/sites.md)
OPERATIONS.extend([
    Operation("get", "/api/sites", "Sites within radiusKm (default 10, at most 100) of ?postcode=, nearest first; "
              "?product= and ?limit= (default 50, at most 100) narrow it", "citizen", response=SiteSearchAnswer,
              query=SiteSearchQuery),
    Operation("get", "/api/sites/{siteId}/slots", "A site's open slots with places left, ?from= to ?to= (London "
              "dates; default today and 28 days on, at most 60), ?product=", "citizen", response=SlotsAnswer,
              query=SlotQuery),
    Operation("post", "/api/admin/sites", "Register a site; its ODS code becomes its id (Idempotency-Key honoured)",
              "admin", request=SiteRegistration, response=SiteRegistered, status=201, staff=True),
    Operation("post", "/api/admin/sites/{siteId}/sessions", "Open a session and create its slots (SiteManager of "
              "the site)", "admin", request=OpenSessionRequest, response=SessionOpened, status=201, staff=True),
    Operation("post", "/api/admin/sites/{siteId}/sessions/{sessionId}/cancel", "Cancel a session; refused while "
              "it holds bookings unless cancelBookings", "admin", request=CancelSessionRequest,
              response=SessionCancelled, staff=True),
    Operation("get", "/api/admin/sites/{siteId}/sessions", "The site's open sessions of ?date= (default today) "
              "with their places and bookings (SiteStaff or SiteManager of the site)", "admin",
              response=SessionsAnswer, staff=True, query=SessionsQuery),
    Operation("get", "/api/admin/sites/{siteId}/appointments", "The day list of ?date= (SiteStaff or SiteManager "
              "of the site)", "admin", response=DayListAnswer, staff=True, query=DayListQuery),
    Operation("put", "/api/admin/staff/{userId}", "Which sites a member of staff may act for", "admin",
              request=StaffAssignmentRequest, response=StaffAssignment, staff=True),
    Operation("get", "/api/admin/staff/{userId}", "A member of staff's sites", "admin", response=StaffAssignment,
              staff=True),
])

# Bookings (docs/bookings.md)
OPERATIONS.extend([
    Operation("post", "/api/bookings", "Book dose N, or doses N and N+1 together (Idempotency-Key honoured; "
              "Authorization: Bearer <admissionToken> while the waiting room is on)", "citizen",
              request=BookingRequest, response=BookingAnswer, status=201),
    Operation("post", "/api/bookings/lookup", "A booking by reference, for its person (404 for any mismatch)",
              "citizen", request=LookupRequest, response=BookingAnswer),
    Operation("post", "/api/bookings/{reference}/cancel", "Cancel a booking; its places return", "citizen",
              request=PersonProof, response=BookingAnswer),
    Operation("post", "/api/bookings/{reference}/reschedule", "Move a booking's appointments in one step: the old "
              "places are given up only once the new ones are held", "citizen", request=RescheduleRequest,
              response=BookingAnswer),
    Operation("post", "/api/admin/sms/opt-outs", "Put a mobile number on the STOP list", "admin",
              request=OptOutRequest, response=OptOutAnswer, status=201, also=(200,), staff=True),
])

# GP practices (docs/gp-practices.md)
OPERATIONS.extend([
    Operation("get", "/api/gp/{odsCode}/uploads", "The practice's uploaded patient lists and their outcomes "
              "(GpPractice of the practice)", "gp", response=UploadsAnswer, staff=True),
    Operation("get", "/api/gp/{odsCode}/uploads/{fileName}/report", "An upload's report as CSV, one row per input "
              "row with its outcome (GpPractice of the practice)", "gp", staff=True, media="text/csv"),
    Operation("post", "/api/gp/{odsCode}/invitations", "Text the file's INVITABLE people not yet invited, up to the "
              "practice's free clinic places in 28 days times GP_INVITE_FACTOR", "gp", request=InvitationRunRequest,
              response=InvitationRunAnswer, status=202, staff=True),
    Operation("get", "/api/invitations/{code}", "What an invitation is: the practice, its status and expiry; no "
              "personal data", "citizen", response=InvitationAnswer),
    Operation("get", "/api/invitations/{code}/slots", "The practice's clinic slots with places left, ?from= to ?to= "
              "(as a site's slots)", "citizen", response=SlotsAnswer, query=SlotQuery),
    Operation("post", "/api/invitations/{code}/booking", "Book the invited person at the practice's clinics: the "
              "date of birth proves it is them; no waiting room (Idempotency-Key honoured)", "citizen",
              request=InvitationBookingRequest, response=BookingAnswer, status=201),
])

# Site operations (docs/site-operations.md)
OPERATIONS.extend([
    Operation("post", "/api/admin/checkins", "Check a person in for today's appointment (SiteStaff of its site); "
              "twice answers the same", "admin", request=CheckInRequest, response=CheckInAnswer, staff=True),
    Operation("post", "/api/admin/vaccinations", "Record a dose given: booked ({reference}) or walk-in ({siteId, "
              "nhsNumber, dateOfBirth}); the same dose twice is recorded once", "admin", request=VaccinationRequest,
              response=VaccinationAnswer, status=201, staff=True),
    Operation("post", "/api/admin/bookings", "Book for someone by phone (BookingAgent): the citizen booking body, "
              "no waiting room", "admin", request=BookingRequest, response=BookingAnswer, status=201, staff=True),
    Operation("post", "/api/admin/sites/{siteId}/sessions/{sessionId}/move", "Move every booking of the session "
              "into another session's slots, or cancel it with a text; the session is then cancelled", "admin",
              request=SessionMoveRequest, response=SessionMoveAnswer, staff=True),
    Operation("get", "/api/admin/audit", "Every staff action of ?date= (default today) at ?siteId= (or anywhere)",
              "admin", response=AuditAnswer, staff=True, query=AuditQuery),
])

# The operator dashboard (docs/dashboard.md)
OPERATIONS.append(
    Operation("get", "/api/admin/dashboard", "The operator's live view from counters: bookings in the last hour and "
              "today, free places in the next 7 days by region and product, the waiting room, texts, poison queues "
              "(NationalAdmin)", "admin", response=DashboardAnswer, staff=True))

# Path parameters are single URL segments; the route answers 404 for one it does not know.
_PATH_PARAMETER = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^/]+$"}
_PROBLEM_STATUSES = "401 or 403 (staff routes), 404, 409, 410, 413, 415, 422, 429, 503"


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": dict(_PATH_PARAMETER)}
            for name in re.findall(r"{(\w+)}", path)]


def _query_value(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's schema as a query string carries it: never null (absent instead)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option.get("type") != "null"]
        rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
        schema = {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}
    return {key: value for key, value in schema.items() if not (key == "default" and value is None)}


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter per field. An optional one may also be sent empty (`?product=`, as HTML forms do),
    which QueryModel reads as absent."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    defs.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    parameters = []
    for name, property_schema in schema.get("properties", {}).items():
        value = _query_value(property_schema)
        if name not in required and getattr(model, "_drop_empty", None) is not None:
            value = {"anyOf": [value, {"type": "string", "maxLength": 0}]}
        parameters.append({"name": name, "in": "query", "required": name in required, "schema": value})
    return parameters


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


# In OpenAPI 3.1 `format` only annotates; these patterns make the standard formats the routes read
# assert what the routes accept. A session's times are London wall-clock times without an offset,
# which JSON Schema's `time` (RFC 3339: always with an offset) cannot say, so it gives way to the pattern.
_DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
_FORMAT_PATTERNS = {
    "date": f"^{_DATE}$",
    "date-time": f"^{_DATE}T{_TIME}(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$",
    "time": f"^{_TIME}$",
}


def _with_format_patterns(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_format_patterns(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: _with_format_patterns(value) for key, value in node.items()}
    form = found.get("format")
    pattern = _FORMAT_PATTERNS.get(form) if isinstance(form, str) and found.get("type") == "string" else None
    if pattern and "pattern" not in found:
        found["pattern"] = pattern
        if form == "time":
            del found["format"]
    return found


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, true to what is served: every path and query parameter the routes read, the bodies
    they validate (required unless every field is optional: an empty body is then `{}`), the success
    answers, and a problem (`application/problem+json`) for every other status."""
    requests = {op.request for op in OPERATIONS if op.request}
    responses = {op.response for op in OPERATIONS if op.response} | {Problem}
    refs, defs = models_json_schema(
        [*((model, "validation") for model in sorted(requests, key=lambda m: m.__name__)),
         *((model, "serialization") for model in sorted(responses, key=lambda m: m.__name__))],
        by_alias=True, ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag],
                                 "operationId": f"{op.method}{re.sub(r'[^A-Za-z0-9]+', '_', op.path)}"}
        parameters = _path_parameters(op.path) + (_query_parameters(op.query, schemas) if op.query else [])
        if parameters:
            entry["parameters"] = parameters
        if op.request:
            required_fields = op.request.model_json_schema(by_alias=True).get("required")
            entry["requestBody"] = {"required": bool(required_fields),
                                    "content": _json(refs[(op.request, "validation")])}
        responses_of: dict[str, Any] = {}
        for status in (op.status, *op.also):
            answer: dict[str, Any] = {"description": "Success" if status < 400 else "Not ready"}
            if op.response:
                answer["content"] = _json(refs[(op.response, "serialization")])
            elif op.media:
                answer["content"] = {op.media: {"schema": {"type": "string"}}}
            responses_of[str(status)] = answer
        responses_of["default"] = {
            "description": f"A problem (RFC 9457): {_PROBLEM_STATUSES}",
            "content": {"application/problem+json": {"schema": refs[(Problem, "serialization")]}}}
        entry["responses"] = responses_of
        if op.staff:
            entry["security"] = [{"appServiceAuthentication": []}]
        paths.setdefault(op.path, {})[op.method] = entry
    document: dict[str, Any] = _with_format_patterns({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "National vaccination booking service", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"appServiceAuthentication": {
                "type": "apiKey", "in": "header", "name": "x-ms-client-principal",
                "description": "Set by App Service Authentication from the staff member's sign-in"}},
        },
    })
    return document
