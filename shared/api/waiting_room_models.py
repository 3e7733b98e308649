"""Waiting-room bodies on the wire."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, StrictBool, StrictInt

from shared.api.models import ApiModel
from shared.domain.waiting_room import MAX_SIGNED_LENGTH

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
