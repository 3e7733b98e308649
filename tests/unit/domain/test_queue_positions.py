"""The queue index, the timer's account of each instance's join messages, and an instance's own joins."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

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
            allowed = 0 if truth <= 2 * INDEX_RESOLUTION else truth / INDEX_RESOLUTION
            assert error <= allowed, (truth, index.below(probe))
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


def test_a_share_is_a_rate_up_to_where_that_instance_has_been_read_to() -> None:
    tracker = SourceTracker()
    now = T0 + dt.timedelta(minutes=3)
    for i in range(100):  # both instances, a join a second each, for 100 s
        moment = seq_at(T0 + dt.timedelta(seconds=i + 30))
        tracker.read("a", i + 1, [moment], now)
        if i < 90 or i == 95:  # b's last messages are on their way, but for one read out of order
            tracker.read("b", i + 1, [moment + 1], now)
    a, b = tracker.published(now)
    rate_a, rate_b = (source.rate()[0] * 1e6 for source in (a, b))
    assert rate_a == pytest.approx(1.0, rel=0.02) and rate_b == pytest.approx(1.0, rel=0.02)


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


def test_another_instance_is_estimated_from_its_rate_or_in_a_burst_from_this_ones_joins() -> None:
    start, read = seq_at(T0), seq_at(T0 + dt.timedelta(seconds=60))
    # A join a second for a minute, and two a second (shares over a longer common stretch).
    mine = JoinSource("me", horizon=read, last=read, recent=61, since=start, share=600)
    busier = JoinSource("b", horizon=read, last=read, recent=121, since=start, share=1_200)
    own = OwnJoins("me")
    for second in range(1, 11):  # ten seconds more as before
        own.issued(read + second * 1_000_000)
    now = read + 10_500_000
    steady = unread_joins_before(now, 0, (mine, busier), own, read)
    assert steady == pytest.approx(10 + 21, abs=0.5)  # its own ten, and the other's rate over 10.5 s
    for i in range(2_000):  # then a burst: 2,000 of its own in the next second
        own.issued(now + 1 + i * 500)
    burst = unread_joins_before(now + 1_000_000, 0, (mine, busier), own, read)
    # Twice its own, as its share is twice (pulled a little towards equal shares).
    assert 2_010 + 2 * 2_000 * 0.9 <= burst <= 2_010 + 2 * 2_000 * 1.02
    idle = JoinSource("c", horizon=read, last=read, recent=0)
    assert unread_joins_before(now, 0, (mine, idle), own, read) == 10


def test_without_joins_of_its_own_an_instance_estimates_others_from_their_rate() -> None:
    start, read = seq_at(T0), seq_at(T0 + dt.timedelta(seconds=60))
    other = JoinSource("b", horizon=read, last=read, recent=121, since=start)  # two a second
    estimate = unread_joins_before(read + 10_000_000, 0, (other,), None, read)
    assert estimate == pytest.approx(20, abs=0.5)


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
