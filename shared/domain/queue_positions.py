"""True queue positions: an exact index of who is waiting, and an honest count of joins not yet in it.

The admission timer holds the waiting tickets' sequence numbers in order. It publishes, in the state
every instance caches, a compact index of them (`QueueIndex`) and, per instance that sent joins, how
far it has read that instance's join messages (`JoinSource`). An instance answering a poll counts the
waiting tickets ahead from the index with a bisection, adds its own joins the timer has not read yet
(`OwnJoins`, exact), and estimates the other instances' unread joins from their rates of arrivals.
No I/O here: the timer (`SourceTracker`) and the instances feed these from what they see.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

# The index keeps the sequence number of the waiting tickets at ranks 0, 1, 2, ... 511 and from there
# one every rank // INDEX_RESOLUTION: a count read from it is exact below rank 512 and off by less than
# 1/256 of the rank above (0.4%); 2,526 entries for a million waiting, 3,117 for ten million.
INDEX_RESOLUTION: Final = 256
# A join message not read this long after a later one from the same instance is taken as lost (its
# sender failed the joins it held, and their holders were never given tickets).
GAP_GRACE: Final = dt.timedelta(seconds=30)
# An instance's share of arrivals is counted over this much join time.
SHARE_WINDOW: Final = dt.timedelta(minutes=2)
# Pseudo-joins added to both sides of a share ratio: a load balancer spreads requests evenly over
# instances, so a ratio measured on a few joins is pulled towards one.
SHARE_PRIOR: Final = 100
# Shares are measured again once the join time every instance has been read to holds this many joins.
SHARE_SAMPLE: Final = 100
# An instance that sent no join for this long leaves the state.
SOURCE_KEEP: Final = dt.timedelta(minutes=10)
# An instance remembers its own joins this long; the timer reads a join within seconds of it.
OWN_KEEP: Final = dt.timedelta(minutes=5)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROS = 1_000_000
# Shares are counted per tenth of a second of join time.
_SHARE_BUCKET = 100_000


def _micros(moment: dt.datetime) -> int:
    """Microseconds since 1970: a sequence number's scale (waiting_room.seq_at)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MICROS + delta.microseconds


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


# --- What the timer has read of each instance's joins -----------------------------------------


@dataclass(frozen=True)
class ReadRun:
    """Consecutive join messages of one instance read beyond its first unread one: messages `first` to
    `last`, the highest sequence number and the joins of the first (`first_top`, `first_count`), and
    of them all (`top`, `count`)."""

    first: int
    last: int
    first_top: int
    first_count: int
    top: int
    count: int


@dataclass(frozen=True)
class JoinSource:
    """One instance's joins as far as the admission timer has read them (published in the state).

    An instance numbers its join messages 1, 2, 3... and its tickets' sequence numbers rise with them.
    `batches`: its messages 1..batches have all been read; `horizon`: the highest sequence number in
    them, so every ticket of this instance up to it is in the index; `runs`: the messages read beyond
    those (the queue does not keep order), one run per gap; `recent`: its joins in the last
    SHARE_WINDOW up to its horizon, the first of them at `since` or just after (all read, so its rate
    of arrivals is `rate()`, undistorted by which later messages happen to have been read); `share`:
    its joins in the last SHARE_WINDOW up to where every instance has been read to, the last time that
    held SHARE_SAMPLE joins (instances' shares compare over the same join time); `last`: the highest
    sequence number read.
    """

    id: str
    batches: int = 0
    horizon: int = 0
    last: int = 0
    recent: int = 0
    since: int = 0
    share: int = 0
    runs: tuple[ReadRun, ...] = ()

    def rate(self) -> tuple[float, float]:
        """(joins per microsecond, microseconds observed): the gaps between its joins counted, over
        the span from the first to the last (so neither end's place in a gap biases it)."""
        span = self.horizon - self.since
        if self.recent <= 1 or span < _SHARE_BUCKET:
            return 0.0, 0.0
        return (self.recent - 1) / span, float(span)


# The queue's latency is the median of this many records' (join to record).
LAG_SAMPLES: Final = 256
# A gap stands for a message on its way; this many at once (a queue that has lost its order badly)
# and the oldest are taken as lost, so that the state stays small and a poll quick.
MAX_RUNS: Final = 32


@dataclass
class _Track:
    batches: int = 0
    horizon: int = 0
    last: int = 0
    # Messages read beyond `batches`, number: (top, joins, read at, whether to count them in the share).
    extra: dict[int, tuple[int, int, dt.datetime, bool]] = field(default_factory=dict)
    # Joins up to the horizon per tenth of a second of join time.
    recent: dict[int, int] = field(default_factory=dict)
    share: int = 0


def _runs(extra: dict[int, tuple[int, int, dt.datetime, bool]]) -> list[ReadRun]:
    runs: list[ReadRun] = []
    for number in sorted(extra):
        top, count, _, _ = extra[number]
        if runs and runs[-1].last == number - 1:
            run = runs[-1]
            runs[-1] = ReadRun(run.first, number, run.first_top, run.first_count, max(run.top, top), run.count + count)
        else:
            runs.append(ReadRun(number, number, top, count, top, count))
    return runs


class SourceTracker:
    """The timer's account of each instance's join messages, from which it publishes `JoinSource`s."""

    def __init__(self, sources: Iterable[JoinSource] = (), now: dt.datetime | None = None) -> None:
        self._tracks: dict[str, _Track] = {}
        # From a join to its record, for the records read lately (seconds).
        self._lags: list[float] = []
        self.lag_seconds = 0.0
        read_at = now or _EPOCH
        for source in sources:
            # Restored from the state: a run's inner messages as one, its share as one count at the
            # start of the span it covered (and one at its end), until the window passes it by.
            extra: dict[int, tuple[int, int, dt.datetime, bool]] = {}
            for run in source.runs:
                extra[run.first] = (run.first_top, run.first_count, read_at, True)
                for number in range(run.first + 1, run.last + 1):
                    extra[number] = (run.top, run.count - run.first_count if number == run.last else 0, read_at, True)
            recent: dict[int, int] = {}
            if source.recent:
                recent[source.since // _SHARE_BUCKET] = source.recent - 1
                end = source.horizon // _SHARE_BUCKET
                recent[end] = recent.get(end, 0) + 1
            self._tracks[source.id] = _Track(batches=source.batches, horizon=source.horizon, last=source.last,
                                             extra=extra, recent=recent, share=source.share)

    def read(self, source: str, number: int, seqs: Sequence[int], now: dt.datetime, fresh: bool = True,
             written_at: dt.datetime | None = None) -> None:
        """One join message read from the journal. `fresh` is False for a record the state already
        accounts for (a timer rebuilding re-reads some): it must not count twice in the share."""
        if not seqs:
            return
        track = self._tracks.setdefault(source, _Track())
        top = max(seqs)
        if fresh and written_at is not None:
            self._lags.append(max(0.0, (_micros(written_at) - top) / _MICROS))
        track.last = max(track.last, top)
        if number > track.batches and number not in track.extra:
            track.extra[number] = (top, len(seqs), now, fresh)
            self._absorb(track)

    @staticmethod
    def _absorb(track: _Track) -> None:
        """Messages that now follow the read ones without a gap join them, and count in the share."""
        while track.batches + 1 in track.extra:
            top, count, _, fresh = track.extra.pop(track.batches + 1)
            track.batches += 1
            track.horizon = max(track.horizon, top)
            if fresh and count:
                bucket = top // _SHARE_BUCKET
                track.recent[bucket] = track.recent.get(bucket, 0) + count

    def _pass_lost(self, track: _Track, now: dt.datetime) -> None:
        """Messages missing for GAP_GRACE, or beyond MAX_RUNS gaps, are taken as lost."""
        while track.extra and (now - min(at for _, _, at, _ in track.extra.values()) >= GAP_GRACE
                               or len(_runs(track.extra)) > MAX_RUNS):
            track.batches = min(track.extra) - 1
            self._absorb(track)

    def published(self, now: dt.datetime) -> tuple[JoinSource, ...]:
        """Every instance still sending joins, after passing lost messages."""
        keep_from = _micros(now - SOURCE_KEEP)
        oldest = _micros(now - 2 * SHARE_WINDOW) // _SHARE_BUCKET
        for source, track in list(self._tracks.items()):
            self._pass_lost(track, now)
            track.recent = {bucket: count for bucket, count in track.recent.items() if bucket >= oldest}
            if track.last < keep_from and not track.extra:
                del self._tracks[source]
        start = _micros(now - SHARE_WINDOW) // _SHARE_BUCKET
        self._measure_shares(start)
        if self._lags:
            self._lags = self._lags[-LAG_SAMPLES:]
            self.lag_seconds = sorted(self._lags)[len(self._lags) // 2]
        result = []
        for source, track in self._tracks.items():
            counted = [bucket for bucket in track.recent if bucket >= start]
            result.append(JoinSource(
                id=source, batches=track.batches, horizon=track.horizon, last=track.last,
                recent=sum(track.recent[bucket] for bucket in counted),
                since=min(counted) * _SHARE_BUCKET if counted else 0, share=track.share,
                runs=tuple(_runs(track.extra))))
        return tuple(sorted(result, key=lambda found: found.id))

    def _measure_shares(self, start: int) -> None:
        """Each instance's joins over the same join time, up to where every active instance has been
        read to: kept from the last time that held enough joins (an instance held up keeps them)."""
        active = [track for track in self._tracks.values() if any(bucket >= start for bucket in track.recent)]
        if not active:
            return
        end = min(track.horizon for track in active) // _SHARE_BUCKET  # whole buckets before it only
        counts = [sum(count for bucket, count in track.recent.items() if start <= bucket < end) for track in active]
        if sum(counts) >= SHARE_SAMPLE:
            for track in self._tracks.values():
                track.share = 0
            for track, count in zip(active, counts, strict=True):
                track.share = count


# --- What an instance knows of its own joins --------------------------------------------------


class OwnJoins:
    """The joins this instance issued in the last OWN_KEEP, and the message each went in.

    With the state's account of this instance (`JoinSource`) it counts exactly which of its own tickets
    the index does not hold yet, however the queue reordered its messages.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._seqs: list[int] = []  # ascending: the instance's sequence numbers only rise
        self._numbers: list[int] = []  # message numbers, ascending
        self._firsts: list[int] = []
        self._tops: list[int] = []
        self._next = 1

    def issued(self, seq: int) -> None:
        if self._seqs and seq <= self._seqs[-1]:
            bisect.insort(self._seqs, seq)
        else:
            self._seqs.append(seq)

    def batched(self, seqs: Sequence[int]) -> int:
        """The number of the message that carries these (just issued, ascending) joins."""
        number = self._next
        self._next += 1
        if seqs:
            self._numbers.append(number)
            self._firsts.append(seqs[0])
            self._tops.append(seqs[-1])
        return number

    def failed(self, seqs: Iterable[int]) -> None:
        """A message that did not reach the queue: its joins were refused, so they wait nowhere."""
        for seq in seqs:
            at = bisect.bisect_left(self._seqs, seq)
            if at < len(self._seqs) and self._seqs[at] == seq:
                del self._seqs[at]

    def forget_before(self, seq: int) -> None:
        """Drop what was issued before `seq` (the timer has long read it)."""
        if self._seqs and self._seqs[0] < seq:
            del self._seqs[:bisect.bisect_left(self._seqs, seq)]
        if self._tops and self._tops[0] < seq:
            cut = bisect.bisect_left(self._tops, seq)
            del self._numbers[:cut], self._firsts[:cut], self._tops[:cut]

    def between(self, low: int, high: int) -> int:
        """Own joins with a sequence number strictly between `low` and `high`."""
        if high <= low + 1:
            return 0
        return max(0, bisect.bisect_left(self._seqs, high) - bisect.bisect_right(self._seqs, low))

    def spread(self, low: int, high: int) -> float:
        """Own joins between `low` and `high` as a rate over that span: like `between`, but an own join
        counts in proportion to how much of the gap before it lies inside, so that a span starting at
        another instance's join is not biased by where it falls among this instance's joins."""
        return max(0.0, self._rank(high) - self._rank(low))

    def _rank(self, seq: int) -> float:
        """Own joins before `seq`, each counted in over the gap that follows it (after the last, over a
        gap as long as the one before it)."""
        below = bisect.bisect_left(self._seqs, seq)
        if below == 0:
            return 0.0
        previous = self._seqs[below - 1]
        if below < len(self._seqs):
            gap = self._seqs[below] - previous
        else:
            gap = previous - self._seqs[below - 2] if below >= 2 else 0
        return below - 1 + (min(1.0, (seq - previous) / gap) if gap > 0 else 1.0)

    def unread_between(self, low: int, high: int, mine: JoinSource | None) -> int:
        """Own joins strictly between `low` and `high` that the state's index does not hold."""
        start = low
        if mine is not None:
            at = bisect.bisect_right(self._numbers, mine.batches) - 1
            if at >= 0:
                start = max(start, self._tops[at])  # messages up to `batches` are all read
        count = self.between(start, high)
        for run in mine.runs if mine is not None else ():
            first = bisect.bisect_left(self._numbers, run.first)
            last = bisect.bisect_right(self._numbers, run.last) - 1
            if first <= last:
                count -= self.between(max(start, self._firsts[first] - 1), min(high, self._tops[last] + 1))
        return max(0, count)


def unread_joins_before(seq: int, floor: int, sources: Sequence[JoinSource], own: OwnJoins | None,
                        read_to: int = 0) -> float:
    """Joins after `floor` and before `seq` that the state's index does not hold yet.

    This instance's own are counted exactly. Another instance's are estimated from its rate of joins
    (`JoinSource.rate`) from `read_to`, the join time up to which the timer had
    most likely read everything (its read less the queue's latency), unless this instance's own
    joins over the same span depart from its own rate by more than chance allows (a burst has begun,
    or ended): then from those, scaled by the two instances' rates, since a load balancer spreads a
    burst as it spread what came before. An instance the timer has not heard from yet is not counted.
    """
    mine = next((source for source in sources if own is not None and source.id == own.source), None)
    total = float(own.unread_between(floor, seq, mine)) if own is not None else 0.0
    for source in sources:
        if source is not mine and (source.recent > 0 or source.runs):  # idle ones sent nothing lately
            total += _unread_of(source, seq, floor, own, mine, read_to)
    return total


def _unread_of(source: JoinSource, seq: int, floor: int, own: OwnJoins | None, mine: JoinSource | None,
               read_to: int = 0) -> float:
    """Another instance's joins after `floor` and before `seq` not read yet: in the messages missing
    between those read (each holds at least one join), and after the last read."""
    rate, _ = source.rate()
    own_rate, _ = mine.rate() if mine is not None else (0.0, 0.0)
    # The two shares' ratio, pulled towards one as a load balancer makes it, the less was seen; equal
    # while this instance's share is not known.
    if mine is None or (mine.share == 0 and source.share > 0):
        ratio = 1.0
    else:
        ratio = (source.share + SHARE_PRIOR) / (mine.share + SHARE_PRIOR)

    def joins(low: int, high: int, since_read: bool = False) -> float:
        """Its joins between `low` and `high`, as far as this instance can tell. `since_read`: `low` is
        its last join read, and none came between that and what the timer had read to (counting from
        a join of its own would count that empty stretch as well)."""
        span = max(0, high - max(low, read_to) if since_read else high - low)
        steady = rate * span
        if own is None:
            return steady
        counted = own.spread(low, high)
        if own_rate == 0:
            return counted * ratio  # nothing measured yet (the room has just opened): as this one's
        expected = own_rate * span
        if abs(counted - expected) <= 2 * math.sqrt(expected) + 2:
            return steady  # this instance's own arrivals look as usual: so, most likely, do the others'
        return counted * ratio

    total, number, top = 0.0, source.batches, source.horizon
    for run in source.runs:
        missing, low = run.first - number - 1, max(top, floor)
        if missing > 0 and seq > low and run.first_top > low:
            # Between the messages read: what the span held less the later message's own joins (each
            # message holds one at least), of which those before `seq`.
            held = joins(low, run.first_top + 1)
            if held > 0:
                expected = max(float(missing), held - run.first_count)
                before = joins(low, seq)
            else:  # nothing to go by but the message read after them
                expected = float(missing * run.first_count)
                before = expected * (seq - low) / (run.first_top - low)
            total += min(expected, before)
        number, top = run.last, run.top
    low = max(source.last, floor)
    if seq > low + 1:
        total += joins(low, seq, since_read=True)
    return total
