"""Waiting-room rules: join order, positions and estimates, lapses, admission steps, signed claims."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.queue_positions import queue_index
from shared.domain.waiting_room import (
    LAPSE_AFTER,
    AdmissionClaims,
    ClaimRefusedError,
    ClaimSigner,
    Refusal,
    RoomSettings,
    RoomState,
    SequenceSource,
    TicketClaims,
    admissions_due,
    advance,
    after_tick,
    bucket_of,
    estimate_wait_seconds,
    is_lapsed,
    join_message,
    lapsed_bucket_needed,
    moment_of,
    next_windows,
    read_join_message,
    report_until,
    seq_at,
    standing,
    watched_since,
)

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
ON = RoomSettings(enabled=True, admit_per_minute=60, opened_at=seq_at(T0 - dt.timedelta(hours=1)))
SIGNER = ClaimSigner(b"test-key")


def seqs_from(start: dt.datetime, count: int, every: dt.timedelta) -> list[int]:
    return [seq_at(start + i * every) for i in range(count)]


def numbered(count: int, first: int = 1) -> list[int]:
    """Tickets of the ON room's opening as its join counter numbers them."""
    return [ON.opened_at + number for number in range(first, first + count)]


# --- join order -------------------------------------------------------------------------------


def test_sequence_numbers_follow_the_clock_and_never_repeat_on_one_instance() -> None:
    source = SequenceSource()
    same_instant = [source.next(T0) for _ in range(1000)]
    assert same_instant == sorted(same_instant) and len(set(same_instant)) == 1000
    assert source.next(T0 + dt.timedelta(seconds=1)) == seq_at(T0 + dt.timedelta(seconds=1))
    assert moment_of(seq_at(T0)) == T0


def test_a_sequence_number_survives_a_json_double() -> None:
    seq = seq_at(dt.datetime(2099, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC))
    assert int(float(seq)) == seq


# --- positions and estimates ------------------------------------------------------------------


def test_with_the_room_off_everybody_is_admitted() -> None:
    assert standing(seq_at(T0), RoomSettings(), RoomState()).admitted


def test_tickets_from_before_the_room_opened_are_admitted() -> None:
    settings = RoomSettings(enabled=True, opened_at=seq_at(T0))
    assert standing(seq_at(T0) - 1, settings, RoomState()).admitted
    assert not standing(seq_at(T0) + 1, settings, RoomState()).admitted


def test_positions_count_the_tickets_ahead_exactly_read_or_not() -> None:
    waiting = numbered(300, first=41)  # the first 40 were admitted
    state = RoomState(frontier=ON.opened_at + 40, index=queue_index(waiting[:100]))  # 200 not read yet
    positions = [standing(seq, ON, state).position for seq in waiting]
    assert positions == list(range(1, 301))


def test_numbers_nobody_holds_are_not_counted_ahead() -> None:
    waiting = numbered(100)
    lost = ((waiting[10], waiting[19]),)  # a batch of ten whose message never reached the queue
    state = RoomState(frontier=ON.opened_at, lost=lost)
    assert standing(waiting[-1], ON, state).position == 90  # 99 numbers ahead, 10 held by nobody
    assert standing(waiting[5], ON, state).position == 6
    # This instance's own failed batch, known before the timer has noticed: counted once if both know.
    voided = ((waiting[15], waiting[29]),)
    assert standing(waiting[-1], ON, state, voided=voided).position == 80
    assert standing(waiting[-1], ON, RoomState(frontier=waiting[49], lost=lost), voided=voided).position == 50


def test_the_estimate_is_the_position_at_the_admission_rate() -> None:
    waiting = numbered(120)
    state = RoomState(frontier=ON.opened_at, index=queue_index(waiting))
    last = standing(waiting[-1], ON, state)
    assert last.position == 120 and last.estimated_wait_seconds == estimate_wait_seconds(120, 60) == 120


def test_positions_are_discounted_by_the_share_of_tickets_still_there() -> None:
    waiting = numbered(100)
    state = RoomState(frontier=ON.opened_at, index=queue_index(waiting), live_ratio=0.5)
    assert standing(waiting[-1], ON, state).position == 1 + round(99 * 0.5)


def test_a_room_opened_again_numbers_its_tickets_above_the_last_opening() -> None:
    first = RoomSettings().changed(True, 60, T0, "admin")
    closed = first.changed(False, None, T0 + dt.timedelta(microseconds=10), "admin")
    # The first opening handed out a million numbers: more microseconds than passed before reopening.
    again = closed.changed(True, None, T0 + dt.timedelta(seconds=0.5), "admin", first.opened_at + 1_000_000)
    assert again.opened_at == first.opened_at + 1_000_001
    later = closed.changed(True, None, T0 + dt.timedelta(hours=1), "admin", first.opened_at + 1_000_000)
    assert later.opened_at == seq_at(T0 + dt.timedelta(hours=1))


def test_behind_the_frontier_a_ticket_is_admitted_unless_it_lapsed() -> None:
    old, recent = seq_at(T0), seq_at(T0 + dt.timedelta(minutes=2))
    frontier = recent + 5
    state = RoomState(frontier=frontier, lapsed_here=frozenset({recent}))
    assert standing(recent, ON, state).lapsed
    assert standing(recent + 1, ON, state).admitted
    # An earlier bucket's lapsed set is archived: the state says which bucket to look up.
    assert lapsed_bucket_needed(old, ON, state) == bucket_of(old)
    assert lapsed_bucket_needed(recent, ON, state) is None
    assert standing(old, ON, state, archived_lapsed={old}).lapsed
    assert standing(old, ON, state, archived_lapsed=set()).admitted


# --- lapses -----------------------------------------------------------------------------------


def test_a_ticket_lapses_after_five_minutes_without_a_poll_while_its_polls_were_reported() -> None:
    seq = seq_at(T0)
    watched: tuple[tuple[dt.datetime, int | None], ...] = ((T0, None),)
    later = T0 + LAPSE_AFTER + dt.timedelta(minutes=1)
    assert is_lapsed(seq, None, later, watched)
    assert not is_lapsed(seq, later - dt.timedelta(minutes=4), later, watched)
    assert not is_lapsed(seq, None, T0 + dt.timedelta(minutes=4), watched)  # joining counts as a poll


def test_silence_nobody_was_listening_for_is_not_a_lapse() -> None:
    seq = seq_at(T0)
    later = T0 + dt.timedelta(minutes=20)
    assert not is_lapsed(seq, None, later, ())  # a timer that just started has reported nothing
    # Reported only up to an earlier ticket until two minutes ago (the rate was raised since).
    windows = ((T0, seq - 1), (later - dt.timedelta(minutes=2), None))
    assert watched_since(seq, windows) == later - dt.timedelta(minutes=2)
    assert not is_lapsed(seq, None, later, windows)


def test_the_window_history_keeps_what_a_lapse_judgement_needs() -> None:
    windows: tuple[tuple[dt.datetime, int | None], ...] = ()
    for second in range(0, 1200, 2):
        windows = next_windows(windows, T0 + dt.timedelta(seconds=second), 10_000 + second)
    assert len(windows) < 40
    assert windows[0][0] <= T0 + dt.timedelta(seconds=1198) - LAPSE_AFTER - dt.timedelta(seconds=60)
    shrunk = next_windows(windows, T0 + dt.timedelta(seconds=1199), 5)
    assert shrunk[-1][1] == 5  # a shrinking limit is recorded at once


# --- admission steps --------------------------------------------------------------------------


def test_admission_goes_strictly_in_join_order_at_the_allowance() -> None:
    waiting = seqs_from(T0, 10, dt.timedelta(seconds=1))
    progress = advance(0, waiting, 3.5, {}, T0 + dt.timedelta(seconds=20))
    assert progress.admitted == 3 and progress.frontier == waiting[2] and progress.consumed == 3
    assert progress.credit == pytest.approx(0.5)


def test_lapsed_tickets_are_passed_without_using_an_admission() -> None:
    waiting = seqs_from(T0, 10, dt.timedelta(seconds=1))
    now = T0 + dt.timedelta(minutes=10)
    polled = {seq: now for seq in waiting[1::2]}  # the odd ones are still polling
    progress = advance(0, waiting, 3, polled, now, ((T0, None),))
    assert progress.admitted == 3
    assert progress.lapsed == (waiting[0], waiting[2], waiting[4], waiting[6])  # the one after is passed too
    assert progress.frontier == waiting[6]


def test_nothing_is_banked_while_nobody_waits() -> None:
    progress = advance(5, [], 40.0, {}, T0)
    assert progress.credit == 0 and progress.frontier == 5


def test_a_stalled_timer_owes_at_most_a_minute() -> None:
    assert admissions_due(600, T0, T0 + dt.timedelta(seconds=2), 0.25) == pytest.approx(20.25)
    assert admissions_due(600, T0, T0 + dt.timedelta(hours=1), 0) == pytest.approx(600)
    assert admissions_due(600, None, T0, 0.5) == 0.5


def test_a_tick_archives_lapsed_sets_of_buckets_the_frontier_left() -> None:
    waiting = seqs_from(T0, 60, dt.timedelta(seconds=1))
    now = T0 + dt.timedelta(minutes=10)
    polled = {seq: now for i, seq in enumerate(waiting) if i % 3}
    progress = advance(0, waiting, 30, polled, now, ((T0, None),))
    state, archive = after_tick(RoomState(), progress, waiting[progress.consumed:], ON, now, 60, 0, None)
    assert state.admitted == 30 and state.lapsed == len(progress.lapsed) and state.joined == 60
    assert all(bucket < bucket_of(state.frontier) for bucket in archive)
    assert set().union(*archive.values(), state.lapsed_here) == set(progress.lapsed)
    assert state.live_ratio < 1


def test_instances_report_polls_up_to_ten_minutes_of_admissions_ahead() -> None:
    waiting = seqs_from(T0, 2000, dt.timedelta(milliseconds=10))
    assert report_until(waiting, 60, 1.0) == waiting[599]
    assert report_until(waiting[:100], 60, 1.0) is None  # everybody is near the front


# --- the join message -------------------------------------------------------------------------


def test_join_messages_round_trip_and_anything_else_is_refused() -> None:
    assert read_join_message(join_message([3, 1, 2]).encode()) == (3, 1, 2)
    for bad in (b"", b"[]", b"{}", b'{"v":1,"seqs":["1"]}', b'{"v":1,"seqs":[true]}', b'{"v":2,"seqs":[1]}',
                b"\xff"):
        with pytest.raises(ValueError):
            read_join_message(bad)


# --- signed claims ----------------------------------------------------------------------------


def a_ticket(expires: dt.datetime = T0 + dt.timedelta(hours=1)) -> str:
    return SIGNER.ticket(TicketClaims("ticket-id-0001", seq_at(T0), T0, expires))


def a_token(expires: dt.datetime = T0 + dt.timedelta(minutes=10)) -> str:
    return SIGNER.admission(AdmissionClaims("ticket-id-0001", seq_at(T0), T0, expires))


def refusal(open_it: object) -> Refusal:
    with pytest.raises(ClaimRefusedError) as refused:
        open_it()  # type: ignore[operator]
    return refused.value.reason


def test_tickets_and_tokens_round_trip() -> None:
    ticket = SIGNER.open_ticket(a_ticket(), T0)
    assert ticket.seq == seq_at(T0) and ticket.ticket_id == "ticket-id-0001"
    assert SIGNER.open_admission(a_token(), T0).jti == "ticket-id-0001"


def test_a_tampered_ticket_is_refused() -> None:
    prefix, payload, signature = a_ticket().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["seq"] = 1  # to the front of the queue
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(lambda: SIGNER.open_ticket(f"{prefix}.{forged}.{signature}", T0)) is Refusal.FORGED


def test_a_ticket_signed_with_another_key_is_refused_and_a_previous_key_still_verifies() -> None:
    other = ClaimSigner(b"somebody-else").ticket(TicketClaims("ticket-id-0001", 1, T0, T0 + dt.timedelta(hours=1)))
    assert refusal(lambda: SIGNER.open_ticket(other, T0)) is Refusal.FORGED
    rotated = ClaimSigner(b"new-key", previous_keys=(b"somebody-else",))
    assert rotated.open_ticket(other, T0).seq == 1


def test_expired_tickets_and_tokens_are_refused() -> None:
    assert refusal(lambda: SIGNER.open_ticket(a_ticket(T0), T0)) is Refusal.EXPIRED
    assert refusal(lambda: SIGNER.open_admission(a_token(T0 + dt.timedelta(minutes=1)),
                                                 T0 + dt.timedelta(minutes=2))) is Refusal.EXPIRED


def test_a_ticket_is_not_an_admission_token_nor_the_other_way_round() -> None:
    assert refusal(lambda: SIGNER.open_admission(a_ticket(), T0)) is Refusal.MALFORMED
    assert refusal(lambda: SIGNER.open_ticket(a_token(), T0)) is Refusal.MALFORMED
    # Even with the prefix swapped, the signature covers the kind.
    assert refusal(lambda: SIGNER.open_admission("wra1." + a_ticket().split(".", 1)[1], T0)) is Refusal.FORGED


def test_missing_and_malformed_values_are_refused() -> None:
    assert refusal(lambda: SIGNER.open_admission(None, T0)) is Refusal.MISSING
    assert refusal(lambda: SIGNER.open_admission("", T0)) is Refusal.MISSING
    for bad in ("x", "wra1.a", "wra1.a.b.c", "wra1.!!.??", "wra1." + "a" * 600 + ".b"):
        assert refusal(lambda bad=bad: SIGNER.open_admission(bad, T0)) in (Refusal.MALFORMED, Refusal.FORGED)


def test_a_well_signed_payload_of_the_wrong_shape_is_malformed() -> None:
    for claims in ({"jti": 5, "seq": 1, "iat": 0, "exp": 2**40}, {"jti": "ticket-id-0001"}, [1, 2],
                   {"jti": "ticket-id-0001", "seq": True, "iat": 0, "exp": 2**40}):
        signed = SIGNER._sign("wra1", claims)  # type: ignore[arg-type]
        assert refusal(lambda signed=signed: SIGNER.open_admission(signed, T0)) is Refusal.MALFORMED


@given(st.text(max_size=200))
def test_any_string_is_refused_cleanly(value: str) -> None:
    for open_it in (SIGNER.open_ticket, SIGNER.open_admission):
        with pytest.raises(ClaimRefusedError):
            open_it(value, T0)


def test_clients_are_told_to_poll_about_every_tenth_of_their_wait_within_bounds() -> None:
    from shared.domain.waiting_room import LAPSE_AFTER, MAX_POLL_SECONDS, poll_after_seconds

    assert poll_after_seconds(0, admitted=True) == 0
    assert poll_after_seconds(5, admitted=False) == 2  # near the front: often, so no admission waits
    assert poll_after_seconds(300, admitted=False) == 30
    assert poll_after_seconds(36_000, admitted=False) == MAX_POLL_SECONDS
    assert LAPSE_AFTER.total_seconds() / 2 > MAX_POLL_SECONDS  # told to poll, a holder never lapses
