"""What the site use cases share: England's today, the missing-site refusal, and bounded fan-out."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Iterable
from typing import Final, TypeVar

from shared.domain.sites import london_date
from shared.ports.common import Clock
from shared.services.errors import NotFound

T = TypeVar("T")

# Concurrent store requests one search or day list makes (next available dates, booking reads).
FAN_OUT: Final = 16


def london_today(clock: Clock) -> dt.date:
    """Today's date in England, which is what session dates and slot ranges mean."""
    return london_date(clock.now())


# Fresh each time: raising one shared instance would keep growing its traceback.
def no_such_site() -> NotFound:
    return NotFound("No such site")


async def bounded(calls: Iterable[Awaitable[T]], limit: int = FAN_OUT) -> list[T]:
    """Every call's result in order, with at most `limit` of them waiting on the store at once."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))
