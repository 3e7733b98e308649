"""The queue index, the timer's account of each instance's join messages, and an instance's own joins."""

from __future__ import annotations

import datetime as dt
import json
import random

from shared.domain.queue_positions import (
    GAP_GRACE,
    INDEX_RESOLUTION,
    MAX_RUNS,
    JoinSource,
    OwnJoins,
    SourceTracker,
    index_ranks,
    queue_index,
    stored_index,
    unread_joins_before,
)
from shared.domain.waiting_room import (
    MAX_EXTRAPOLATION,
    RoomSettings,
    RoomState,
    admitted_since,
    batch_id,
    join_message,
    read_join_batch,
    seq_at,
)

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def exact_below(waiting: list[int], seq: int) -> int:
    return sum(1 for s in waiting if s < seq)


# --- the index --------------------------------------------------------------------------------


def test_the_index_is_exact_for_the_first_512_places_and_within_a_256th_beyond() -> None:
    rng = random.Random(7)
    seq, waiting = seq_at(T0), []
    for _ in range(20_000):  # bursts and lulls
        seq += rng.choice([1, 1, 1, 50, 3_000, 2_000_000])
        waiting.append(seq)
    index = queue_index(waiting)
    for rank in [*range(300), *rng.sample(range(300, 20_000), 2_000)]:
        for probe in (waiting[rank], waiting[rank] + 1):
            truth = rank if probe == waiting[rank] else rank + 1
            error = abs(index.below(probe) - truth)
            assert error <= (0 if truth <= 2 * INDEX_RESOLUTION else truth / INDEX_RESOLUTION), (truth, index.below(probe))
    assert index.below(waiting[0]) == 0 and index.below(waiting[-1] + 1) == 20_000


def test_a_million_waiting_are_indexed_in_about_2500_numbers() -> None:
    assert len(index_ranks(1_000_000)) < 2_600
    assert len(index_ranks(10_000_000)) < 3_200
    assert index_ranks(5) == (0, 1, 2, 3, 4)


def test_an_index_that_does_not_fit_its_count_is_dropped() -> None:
    assert stored_index(3, [1, 2]).count == 0
    assert stored_index(3, [1, 2, 3]).below(3) == 2


# --- the timer's account of an instance's messages ----------------------------------------------


def test_messages_read_out_of_order_are_runs_until_the_gap_is_filled() -> None:
    tracker = SourceTracker()
    base = seq_at(T0)
    for number in (1, 2, 4, 5, 7):
        tracker.read("a", number, [base + 10 * number, base + 10 * number + 1], T0)
    [source] = tracker.published(T0)
    assert (source.batches, source.horizon) == (2, base + 21)
    assert [(run.first, run.last, run.count) for run in source.runs] == [(4, 5, 4), (7, 7, 2)]
    tracker.read("a", 3, [base + 30], T0)
    tracker.read("a", 6, [base + 60], T0)
    [source] = tracker.published(T0)
    assert (source.batches, source.horizon, source.runs) == (7, base + 71, ())


def test_a_message_missing_for_the_grace_is_taken_as_lost() -> None:
    tracker = SourceTracker()
    tracker.read("a", 1, [seq_at(T0)], T0)
    tracker.read("a", 3, [seq_at(T0) + 30], T0)
    assert tracker.published(T0 + GAP_GRACE - dt.timedelta(seconds=1))[0].batches == 1
    assert tracker.published(T0 + GAP_GRACE)[0].batches == 3


def test_too_many_gaps_at_once_pass_the_oldest() -> None:
    tracker = SourceTracker()
    for number in range(2, 2 * MAX_RUNS + 10, 2):  # every other message missing
        tracker.read("a", number, [seq_at(T0) + number], T0)
    [source] = tracker.published(T0)
    assert len(source.runs) == MAX_RUNS


def test_the_account_survives_a_new_timer() -> None:
    tracker = SourceTracker()
    now = T0 + dt.timedelta(seconds=30)
    for number in (1, 2, 3, 5, 6, 9):
        tracker.read("a", number, [seq_at(T0) + number * 1_000, seq_at(T0) + number * 1_000 + 1], now)
    published = tracker.published(now)
    assert SourceTracker(published, now).published(now) == published


def test_shares_count_only_join_time_every_instance_has_been_read_to() -> None:
    tracker = SourceTracker()
    now = T0 + dt.timedelta(minutes=3)
    for i in range(100):  # both instances, a join a second each, for 100 s
        moment = seq_at(T0 + dt.timedelta(seconds=i + 30))
        tracker.read("a", i + 1, [moment], now)
        if i < 90:  # b's last ten messages are still on their way
            tracker.read("b", i + 1, [moment + 1], now)
    a, b = tracker.published(now)
    assert a.recent == b.recent  # counted up to where b is read to, not to where a is


# --- an instance's own joins ------------------------------------------------------------------


def test_own_joins_the_state_has_not_read_are_counted_exactly() -> None:
    own = OwnJoins("me")
    seqs = list(range(100, 200))
    for start in range(0, 100, 10):  # ten messages of ten
        for seq in seqs[start:start + 10]:
            own.issued(seq)
        own.batched(seqs[start:start + 10])
    tracker = SourceTracker()
    for number in (1, 2, 3, 5, 6, 9):  # read: 1-3, 5-6, 9; not read: 4, 7, 8, 10
        tracker.read("me", number, seqs[(number - 1) * 10:number * 10], T0)
    [mine] = tracker.published(T0)
    unread = {s for n in (4, 7, 8, 10) for s in seqs[(n - 1) * 10:n * 10]}
    for high in (100, 135, 150, 175, 185, 200, 250):
        assert own.unread_between(0, high, mine) == sum(1 for s in unread if s < high)
    assert own.unread_between(0, 250, None) == 100  # nothing read at all yet


def test_joins_refused_by_the_queue_are_not_counted() -> None:
    own = OwnJoins("me")
    for seq in (1, 2, 3):
        own.issued(seq)
    own.failed([2])
    assert own.between(0, 10) == 2


# --- others' joins not read yet ---------------------------------------------------------------


def test_another_instance_is_estimated_from_this_ones_joins_scaled_by_its_share() -> None:
    own = OwnJoins("me")
    for seq in range(1_000, 2_000, 10):  # 100 own joins, none read
        own.issued(seq)
    mine = JoinSource("me", recent=100)
    busier = JoinSource("b", recent=200, last=999)
    estimate = unread_joins_before(2_000, 0, (mine, busier), own)
    assert 100 + 170 <= estimate <= 100 + 200  # its share is twice this one's (pulled a little towards equal)
    idle = JoinSource("c", recent=0, last=999)
    assert unread_joins_before(2_000, 0, (mine, idle), own) == 100


def test_without_joins_of_its_own_an_instance_estimates_others_from_their_rate() -> None:
    other = JoinSource("b", recent=240, last=seq_at(T0))  # two a second over the two-minute window
    estimate = unread_joins_before(seq_at(T0 + dt.timedelta(seconds=10)), 0, (other,), None)
    assert 19 <= estimate <= 21


# --- progress between ticks -------------------------------------------------------------------


def test_admissions_since_the_state_are_counted_half_a_tick_late_and_not_for_ever() -> None:
    settings = RoomSettings(enabled=True, admit_per_minute=600, opened_at=seq_at(T0))
    state = RoomState(ticked_at=T0, tick_seconds=2.0)
    assert admitted_since(settings, state, T0 + dt.timedelta(seconds=0.5)) == 0
    assert admitted_since(settings, state, T0 + dt.timedelta(seconds=3)) == 20
    assert admitted_since(settings, state, T0 + dt.timedelta(hours=1)) == (MAX_EXTRAPOLATION.total_seconds() - 1) * 10


# --- the join message -------------------------------------------------------------------------


def test_a_join_message_names_its_sender_and_number_and_a_bad_name_is_ignored() -> None:
    batch = read_join_batch(join_message([5, 6], "instance-1", 7))
    assert (batch.seqs, batch.source, batch.number) == ((5, 6), "instance-1", 7)
    for source, number in (("bad name", 1), ("x" * 65, 1), ("ok", 0), ("ok", True)):
        body = json.dumps({"v": 1, "seqs": [5], "src": source, "n": number})
        assert read_join_batch(body) == read_join_batch(join_message([5]))
    assert batch_id([5, 6], "a") != batch_id([5, 6], "b") != batch_id([5, 6])
