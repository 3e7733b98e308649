"""Ports every area uses: the clock, dependency probes, and the conflict a conditional write can lose."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """The time now, in UTC; injected so that services and tests control it."""

    def now(self) -> dt.datetime: ...


class DependencyProbe(Protocol):
    """Checks that one store the app depends on answers."""

    @property
    def name(self) -> str: ...

    async def check(self) -> None:
        """Return when the dependency answers; raise otherwise."""
        ...


class VersionConflictError(Exception):
    """A conditional write lost to a concurrent one."""
