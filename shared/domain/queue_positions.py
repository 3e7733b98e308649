"""True queue positions: tickets numbered 1, 2, 3... in join order, so the people ahead are a subtraction.

While the room is on, every join takes its number from one counter per opening (an instance takes a
block of numbers for the joins it batches, with one atomic increment), and a ticket's sequence number
is the opening's plus that number. The numbers are dense: every number below a ticket's was handed to
someone who joined before it, so the people ahead of ticket `s` are `s - floor - 1` (the floor being
the admission frontier), less the numbers nobody holds: those taken by a join whose message never
reached the queue (`lost`, published by the timer; an instance also knows its own failures at once).

The timer keeps an account of which numbers it has read (`NumberAccount`), so that it can tell a
message still on its way from one that was lost. It also publishes an index of the waiting tickets
it has read (`QueueIndex`), for the count of those waiting and what comes next. No I/O here.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

# The index keeps the sequence number of the waiting tickets at ranks 0, 1, 2, ... 511 and from there
# one every rank // INDEX_RESOLUTION: a count read from it is exact below rank 512 and off by less than
# 1/256 of the rank above (0.4%); 2,526 entries for a million waiting, 3,117 for ten million.
INDEX_RESOLUTION: Final = 256
# A number not read this long after a later one was is taken as lost: its join's message never reached
# the queue (the join was refused, so nobody holds it). The queue redelivers a message whose handler
# failed after its visibility timeout (10 s by default), well inside this.
GAP_GRACE: Final = dt.timedelta(seconds=30)
# Beyond this many gaps at once (a queue that has lost its order badly) the oldest are taken as lost,
# so that the state stays small and a poll quick.
MAX_GAPS: Final = 256

# (first, last) numbers, inclusive, ascending and disjoint.
Ranges = tuple[tuple[int, int], ...]
_LONG_AGO = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- Counting numbers nobody holds ------------------------------------------------------------


def count_between(ranges: Iterable[tuple[int, int]], low: int, high: int) -> int:
    """How many numbers of `ranges` lie strictly between `low` and `high`."""
    return sum(max(0, min(last, high - 1) - max(first, low + 1) + 1) for first, last in ranges)


def merged(*groups: Iterable[tuple[int, int]]) -> Ranges:
    """The union of ranges, as ascending disjoint ranges."""
    result: list[tuple[int, int]] = []
    for first, last in sorted(pair for group in groups for pair in group):
        if result and first <= result[-1][1] + 1:
            result[-1] = (result[-1][0], max(result[-1][1], last))
        else:
            result.append((first, last))
    return tuple(result)


def nth_after(ranges: Iterable[tuple[int, int]], low: int, nth: int) -> int:
    """The `nth` (1 = first) number of `ranges` above `low`; `low` itself when nth is 0 or too large."""
    for first, last in ranges:
        start = max(first, low + 1)
        if start > last or nth <= 0:
            continue
        if nth <= last - start + 1:
            return start + nth - 1
        nth -= last - start + 1
    return low


def numbers_ahead(seq: int, floor: int, lost: Ranges = ()) -> int:
    """Tickets after `floor` and before `seq` that somebody holds: every number between, less the lost."""
    if seq <= floor + 1:
        return 0
    return max(0, seq - floor - 1 - count_between(lost, floor, seq))


def numbered(opening: int, last: int, count: int) -> list[int]:
    """The sequence numbers of a block of `count` numbers ending at `last` (the counter after taking it)."""
    return [opening + number for number in range(last - count + 1, last + 1)]


# --- The timer's account of the numbers it has read -------------------------------------------


class NumberAccount:
    """Which numbers after the frontier the timer has read: all up to `top` except the gaps.

    A gap is a run of numbers taken by joins whose messages have not been read (on their way, or
    lost); one older than GAP_GRACE is published as lost. A late message that fills a gap taken as
    lost counts again at once.
    """

    def __init__(self, floor: int = 0, lost: Ranges = ()) -> None:
        # (first, last, missing since), ascending.
        self._gaps: list[tuple[int, int, dt.datetime]] = [(first, last, _LONG_AGO) for first, last in lost
                                                          if last > floor]
        self.top = max([floor, *(last for _, last, _ in self._gaps)])

    def read(self, seqs: Sequence[int], now: dt.datetime) -> None:
        for seq in sorted(seqs):
            if seq > self.top:
                if seq > self.top + 1:
                    self._gaps.append((self.top + 1, seq - 1, now))
                self.top = seq
            else:
                self._fill(seq)

    def _fill(self, seq: int) -> None:
        at = bisect.bisect_right(self._gaps, seq, key=lambda gap: gap[0]) - 1
        if at < 0:
            return
        first, last, since = self._gaps[at]
        if seq > last:
            return  # read already (a message delivered twice)
        pieces = [(low, high, since) for low, high in ((first, seq - 1), (seq + 1, last)) if low <= high]
        self._gaps[at:at + 1] = pieces

    def passed(self, floor: int) -> None:
        """Admission has passed `floor`: gaps up to it no longer matter."""
        kept = [(max(first, floor + 1), last, since) for first, last, since in self._gaps if last > floor]
        self._gaps = kept
        self.top = max(self.top, floor)

    def lost(self, now: dt.datetime) -> Ranges:
        """Gaps missing for GAP_GRACE or more (and the oldest beyond MAX_GAPS)."""
        cut = max(0, len(self._gaps) - MAX_GAPS)
        return tuple((first, last) for index, (first, last, since) in enumerate(self._gaps)
                     if index < cut or now - since >= GAP_GRACE)

    def on_the_way(self, now: dt.datetime) -> Ranges:
        """Gaps not (yet) taken as lost: joins whose messages are still on the queue."""
        lost = set(self.lost(now))
        return tuple(gap for gap in self.missing() if gap not in lost)

    def missing(self) -> Ranges:
        """Every gap, lost or still on its way."""
        return tuple((first, last) for first, last, _ in self._gaps)


# --- The index of the waiting tickets ---------------------------------------------------------


@functools.lru_cache(maxsize=16)
def index_ranks(count: int) -> tuple[int, ...]:
    """The ranks (0 = first in the queue) an index of `count` waiting tickets keeps, the last included."""
    ranks, rank = [], 0
    while rank < count:
        ranks.append(rank)
        rank += max(1, rank // INDEX_RESOLUTION)
    if ranks and ranks[-1] != count - 1:
        ranks.append(count - 1)
    return tuple(ranks)


@dataclass(frozen=True)
class QueueIndex:
    """`count` waiting tickets, and the sequence number of those at `index_ranks(count)`, ascending."""

    count: int = 0
    cuts: tuple[int, ...] = ()

    @cached_property
    def _ranks(self) -> tuple[int, ...]:
        return index_ranks(self.count)

    def below(self, seq: int) -> float:
        """How many of the indexed tickets have a sequence number below `seq`.

        Exact where the kept ranks are consecutive; between two kept ranks the tickets in the gap are
        taken as spread evenly over its sequence numbers, so the count is off by less than the gap.
        """
        after = bisect.bisect_left(self.cuts, seq)
        if after == 0:
            return 0.0
        if after >= len(self.cuts):
            return float(self.count)
        low, high = self._ranks[after - 1], self._ranks[after]
        first, last = self.cuts[after - 1], self.cuts[after]
        # Everyone up to rank `low` is below `seq`; the one at rank `high` is not.
        gap = high - low - 1
        if gap <= 0 or last <= first:
            return float(low + 1)
        return low + 1 + gap * (seq - first) / (last - first)


def queue_index(waiting: Sequence[int]) -> QueueIndex:
    """The index of the waiting tickets (ascending sequence numbers)."""
    return QueueIndex(len(waiting), tuple(waiting[rank] for rank in index_ranks(len(waiting))))


def stored_index(count: int, cuts: Sequence[int]) -> QueueIndex:
    """An index read back from storage; one that does not fit its count is dropped rather than misread."""
    cuts = tuple(cuts)
    return QueueIndex(count, cuts) if len(cuts) == len(index_ranks(count)) else QueueIndex()
