"""Waiting-room bodies on the wire, and the problems its refusals answer with."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, StrictBool, StrictInt

from shared.api.models import ApiModel
from shared.api.problems import ProblemError
from shared.domain.waiting_room import MAX_SIGNED_LENGTH, ClaimRefusedError, Refusal, poll_after_seconds
from shared.services.errors import AdmissionRequiredError
from shared.services.waiting_room import QueueAnswer, RoomOverview

_SIGNED = r"^[a-z0-9]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class QueueJoinRequest(ApiModel):
    """Joining takes nothing personal: the body is `{}`."""


class QueueStatusRequest(ApiModel):
    ticket: str = Field(min_length=1, max_length=MAX_SIGNED_LENGTH, pattern=_SIGNED)


class QueueStatusAnswer(ApiModel):
    """`position` 1 is next; 0 once admitted, when `admissionToken` is present."""

    ticket: str
    position: int
    estimated_wait_seconds: int
    admitted: bool
    admission_token: str | None = None
    # When to ask again (0 once admitted): the client's poll interval, so polls scale with the wait.
    poll_after_seconds: int = 0

    @classmethod
    def of(cls, answer: QueueAnswer) -> QueueStatusAnswer:
        return cls(ticket=answer.ticket, position=answer.position,
                   estimated_wait_seconds=answer.estimated_wait_seconds, admitted=answer.admitted,
                   admission_token=answer.admission_token,
                   poll_after_seconds=poll_after_seconds(answer.estimated_wait_seconds, answer.admitted))


class WaitingRoomSettingsRequest(ApiModel):
    enabled: StrictBool
    # Omitted: the current rate is kept.
    admit_per_minute: StrictInt | None = Field(default=None, ge=1, le=1_000_000)


class WaitingRoomView(ApiModel):
    """The settings and live figures: tickets joined while the room was on, admitted, lapsed, waiting."""

    enabled: bool
    admit_per_minute: int
    version: int
    updated_at: dt.datetime | None
    joined: int
    admitted: int
    lapsed: int
    waiting: int
    ticked_at: dt.datetime | None

    @classmethod
    def of(cls, overview: RoomOverview) -> WaitingRoomView:
        settings, state = overview.settings, overview.state
        return cls(enabled=settings.enabled, admit_per_minute=settings.admit_per_minute, version=settings.version,
                   updated_at=settings.updated_at, joined=state.joined, admitted=state.admitted,
                   lapsed=state.lapsed, waiting=state.waiting, ticked_at=state.ticked_at)


def ticket_problem(error: ClaimRefusedError) -> ProblemError:
    """403 for a ticket that is not ours (forged, tampered, malformed) or has expired: join again."""
    if error.reason is Refusal.EXPIRED:
        return ProblemError(403, "TICKET_EXPIRED", "Ticket expired", "This ticket has expired; join the queue again")
    return ProblemError(403, "TICKET_INVALID", "Ticket not valid",
                        f"This ticket was not issued by this service ({error.reason.value})")


def lapsed_problem() -> ProblemError:
    return ProblemError(410, "TICKET_LAPSED", "Place lapsed",
                        "This ticket was not checked for 5 minutes when its turn came; join the queue again")


def bearer_token(authorization: str | None) -> str | None:
    """The admission token from an `Authorization: Bearer <token>` header; None when there is none."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def admission_problem(error: AdmissionRequiredError) -> ProblemError:
    """403 ADMISSION_REQUIRED, for booking while the waiting room is on."""
    details = {
        "missing": "Booking needs an admission token from the waiting room (Authorization: Bearer)",
        "used": "This admission has already been used for a booking",
        "expired": "This admission token has expired; check your place in the queue for a new one",
    }
    return ProblemError(403, "ADMISSION_REQUIRED", "Admission required",
                        details.get(error.reason, "This admission token was not issued by this service"))
