"""Counting the people ahead from join numbers, the timer's account of the numbers read, the queue index."""

from __future__ import annotations

import datetime as dt
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.queue_positions import (
    GAP_GRACE,
    INDEX_RESOLUTION,
    MAX_GAPS,
    NumberAccount,
    count_between,
    index_ranks,
    merged,
    numbered,
    numbers_ahead,
    queue_index,
    stored_index,
)
from shared.domain.waiting_room import (
    MAX_EXTRAPOLATION,
    RoomSettings,
    RoomState,
    admitted_since,
    batch_id,
    join_message,
    read_join_batch,
    released,
    released_at,
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


# --- counting from join numbers -------------------------------------------------------------------


def test_a_block_of_numbers_ends_at_the_counter() -> None:
    assert numbered(1_000, 12, 3) == [1_010, 1_011, 1_012]


def test_ranges_are_merged_and_counted_strictly_between() -> None:
    assert merged(((5, 9),), ((1, 2), (8, 12), (3, 3))) == ((1, 3), (5, 12))
    assert count_between(((5, 9), (20, 21)), 4, 10) == 5
    assert count_between(((5, 9), (20, 21)), 5, 9) == 3
    assert count_between(((5, 9),), 9, 20) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40), st.data())
def test_the_people_ahead_are_every_number_between_less_the_lost(batches: list[int], data: st.DataObject) -> None:
    """Instances take blocks of numbers in any interleaving; some blocks never reach the queue."""
    blocks, last = [], 0
    for size in batches:
        blocks.append((last + 1, last + size))
        last += size
    lost_flags = data.draw(st.lists(st.booleans(), min_size=len(blocks), max_size=len(blocks)))
    held = [n for (first, end), lost in zip(blocks, lost_flags, strict=True) if not lost for n in range(first, end + 1)]
    lost = tuple(block for block, flag in zip(blocks, lost_flags, strict=True) if flag)
    floor = data.draw(st.integers(min_value=0, max_value=last))
    for seq in held:
        if seq > floor:
            assert numbers_ahead(seq, floor, lost) == sum(1 for other in held if floor < other < seq)


# --- the timer's account of the numbers it has read ------------------------------------------------


def test_numbers_read_out_of_order_leave_gaps_until_they_come() -> None:
    account = NumberAccount(floor=100)
    account.read([106, 107], T0)
    account.read([101, 102], T0)
    assert account.missing() == ((103, 105),)
    account.read([104], T0 + dt.timedelta(seconds=1))
    assert account.missing() == ((103, 103), (105, 105))
    account.read([104], T0 + dt.timedelta(seconds=2))  # delivered twice: nothing changes
    account.read([103, 105], T0 + dt.timedelta(seconds=2))
    assert account.missing() == () and account.top == 107


def test_a_gap_is_taken_as_lost_after_the_grace_and_counts_again_if_it_comes() -> None:
    account = NumberAccount(floor=0)
    account.read([1, 2], T0)
    account.read([6], T0)
    assert account.lost(T0 + GAP_GRACE - dt.timedelta(seconds=1)) == ()
    assert account.lost(T0 + GAP_GRACE) == ((3, 5),)
    account.read([4], T0 + GAP_GRACE + dt.timedelta(seconds=5))  # a very late delivery
    assert account.lost(T0 + GAP_GRACE + dt.timedelta(seconds=5)) == ((3, 3), (5, 5))
    account.passed(4)
    assert account.missing() == ((5, 5),)


def test_a_new_timer_restores_what_was_lost_and_finds_the_rest_again() -> None:
    account = NumberAccount(floor=10, lost=((5, 8), (12, 13), (20, 20)))
    assert account.missing() == ((12, 13), (20, 20)) and account.top == 20
    assert account.lost(T0) == ((12, 13), (20, 20))  # lost already: not given another grace
    account.read([25], T0)
    assert account.missing() == ((12, 13), (20, 20), (21, 24))


def test_beyond_max_gaps_the_oldest_are_taken_as_lost() -> None:
    account = NumberAccount(floor=0)
    account.read(range(2, 2 * (MAX_GAPS + 10) + 1, 2), T0)  # every odd number missing
    assert len(account.lost(T0)) == 10 and account.lost(T0)[0] == (1, 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_whatever_the_order_of_delivery_the_gaps_are_exactly_what_was_not_read(
        sizes: list[int], rng: random.Random) -> None:
    blocks, last = [], 0
    for size in sizes:
        blocks.append(list(range(last + 1, last + size + 1)))
        last += size
    rng.shuffle(blocks)
    delivered = blocks[:rng.randint(0, len(blocks))]
    account = NumberAccount(floor=0)
    for block in delivered:
        account.read(block, T0)
    read = {n for block in delivered for n in block}
    missing = {n for first, end in account.missing() for n in range(first, end + 1)}
    assert missing == {n for n in range(1, account.top) if n not in read}


# --- progress between ticks -------------------------------------------------------------------


def test_admissions_beyond_the_state_are_counted_from_the_end_of_its_release_and_not_for_ever() -> None:
    settings = RoomSettings(enabled=True, admit_per_minute=600, opened_at=seq_at(T0))
    state = RoomState(ticked_at=T0, tick_seconds=2.0)
    assert admitted_since(settings, state, T0 + dt.timedelta(seconds=1.5)) == 0
    assert admitted_since(settings, state, T0 + dt.timedelta(seconds=3)) == 10
    assert admitted_since(settings, state, T0 + dt.timedelta(hours=1)) == (MAX_EXTRAPOLATION.total_seconds() - 2) * 10


def test_what_a_tick_passed_is_released_evenly_over_the_next_tick() -> None:
    state = RoomState(frontier=1_200, released_from=1_000, ticked_at=T0, tick_seconds=2.0)
    at = [released(state, T0 + dt.timedelta(seconds=tenth / 10)) for tenth in range(0, 25, 5)]
    assert at == [1_001, 1_051, 1_101, 1_151, 1_200]  # the first at once
    assert released(state, T0 - dt.timedelta(milliseconds=1)) == 1_000
    assert released(state, None) == 1_200 and released(RoomState(frontier=7), T0) == 7
    for seq in (1_001, 1_100, 1_200):
        moment = released_at(seq, state)
        assert moment is not None and released(state, moment) >= seq
        assert released(state, moment - dt.timedelta(milliseconds=1)) < seq
    assert released_at(1_201, state) is None


# --- the join message -------------------------------------------------------------------------


def test_a_join_message_names_its_sender_and_number_and_a_bad_name_is_ignored() -> None:
    batch = read_join_batch(join_message([5, 6], "instance-1", 7))
    assert (batch.seqs, batch.source, batch.number) == ((5, 6), "instance-1", 7)
    for source, number in (("bad name", 1), ("x" * 65, 1), ("ok", 0), ("ok", True)):
        body = json.dumps({"v": 1, "seqs": [5], "src": source, "n": number})
        assert read_join_batch(body) == read_join_batch(join_message([5]))
    assert batch_id([5, 6], "a") != batch_id([5, 6], "b") != batch_id([5, 6])
