"""The OpenAPI 3.1 document, generated from the same pydantic models the routes validate with."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.booking_models import BookingAnswer, BookingRequest, LookupRequest, PersonProof, RescheduleRequest
from shared.api.models import (
    EligibilityAnswer,
    EligibilityRequest,
    HealthAnswer,
    NimsImportAnswer,
    NimsImportRequest,
    OptOutRequest,
    PolicyDocument,
)
from shared.api.problems import Problem
from shared.api.site_models import (
    CancelSessionRequest,
    DayListAnswer,
    OpenSessionRequest,
    SessionCancelled,
    SessionOpened,
    SiteRegistered,
    SiteRegistration,
    SiteSearchAnswer,
    SlotsAnswer,
    StaffAssignment,
    StaffAssignmentRequest,
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
    """One route of the contract."""

    method: str
    path: str
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    staff: bool = False


OPERATIONS: list[Operation] = [
    Operation("get", "/api/health", "Whether the app can reach its stores", "health", response=HealthAnswer),
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
              "?product= and ?limit= (default 50, at most 100) narrow it", "citizen", response=SiteSearchAnswer),
    Operation("get", "/api/sites/{siteId}/slots", "A site's open slots with places left, ?from= to ?to= (London "
              "dates; default today and 28 days on, at most 60), ?product=", "citizen", response=SlotsAnswer),
    Operation("post", "/api/admin/sites", "Register a site; its ODS code becomes its id (Idempotency-Key honoured)",
              "admin", request=SiteRegistration, response=SiteRegistered, status=201, staff=True),
    Operation("post", "/api/admin/sites/{siteId}/sessions", "Open a session and create its slots (SiteManager of "
              "the site)", "admin", request=OpenSessionRequest, response=SessionOpened, status=201, staff=True),
    Operation("post", "/api/admin/sites/{siteId}/sessions/{sessionId}/cancel", "Cancel a session; refused while "
              "it holds bookings unless cancelBookings", "admin", request=CancelSessionRequest,
              response=SessionCancelled, staff=True),
    Operation("get", "/api/admin/sites/{siteId}/appointments", "The day list of ?date= (SiteStaff or SiteManager "
              "of the site)", "admin", response=DayListAnswer, staff=True),
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
              request=OptOutRequest, response=None, status=201, staff=True),
])


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    models: set[type[BaseModel]] = {Problem}
    models.update(op.request for op in OPERATIONS if op.request)
    models.update(op.response for op in OPERATIONS if op.response)
    refs, defs = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        by_alias=True, ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "responses": {}}
        if op.request:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(op.request, "validation")]}}}
        answer: dict[str, Any] = {"description": "Success"}
        if op.response:
            answer["content"] = {"application/json": {"schema": refs[(op.response, "validation")]}}
        entry["responses"][str(op.status)] = answer
        entry["responses"]["default"] = {"description": "A problem", "content": {
            "application/problem+json": {"schema": refs[(Problem, "validation")]}}}
        if op.staff:
            entry["security"] = [{"appServiceAuthentication": []}]
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "National vaccination booking service", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"appServiceAuthentication": {
                "type": "apiKey", "in": "header", "name": "x-ms-client-principal"}},
        },
    }
