"""Outcomes of use cases that are not results: each maps to one problem answer at the edge."""

from __future__ import annotations


class RateLimitedError(Exception):
    """Too many attempts: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after


class AdmissionRequiredError(Exception):
    """The waiting room is on and this request has no usable admission token (answer 403 ADMISSION_REQUIRED).

    `reason` is one of "missing", "malformed", "forged", "expired", "used": safe to show and to log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"admission required: {reason}")
        self.reason = reason
