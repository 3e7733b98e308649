"""Outcomes of use cases that are not results: each maps to one problem answer at the edge."""

from __future__ import annotations


class RateLimitedError(Exception):
    """Too many attempts: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after
