"""The booking status table, exhaustively: every pair of statuses, the site's statuses, and the summary a
booking's appointments give it."""

from __future__ import annotations

import itertools

import pytest

from shared.domain.booking import (
    ATTENDANCE_STATUSES,
    OPEN_STATUSES,
    TRANSITIONS,
    BookingStatus,
    TransitionOutcome,
    can_transition,
    is_final,
    is_open,
    summary_status,
    transition_outcome,
)

S = BookingStatus

# The table as docs/site-operations.md draws it, written out again here so that a change to either is seen.
ALLOWED = {
    (S.PENDING, S.CONFIRMED), (S.PENDING, S.RELEASED),
    (S.CONFIRMED, S.CANCELLED), (S.CONFIRMED, S.CHECKED_IN), (S.CONFIRMED, S.VACCINATED),
    (S.CONFIRMED, S.DID_NOT_ATTEND),
    (S.CHECKED_IN, S.VACCINATED), (S.CHECKED_IN, S.DID_NOT_ATTEND),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair_of_statuses_has_exactly_one_outcome(current: BookingStatus, target: BookingStatus) -> None:
    outcome = transition_outcome(current, target)
    if current == target:
        assert outcome is TransitionOutcome.ALREADY_DONE
    elif (current, target) in ALLOWED:
        assert outcome is TransitionOutcome.APPLY and can_transition(current, target)
    else:
        assert outcome is TransitionOutcome.REFUSED and not can_transition(current, target)


def test_the_table_is_the_one_written_down() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert set(TRANSITIONS) == set(S)


def test_what_the_site_records_is_final_and_only_what_is_to_happen_is_open() -> None:
    assert {s for s in S if is_final(s)} == {S.CANCELLED, S.RELEASED, S.VACCINATED, S.DID_NOT_ATTEND}
    assert {s for s in S if is_open(s)} == OPEN_STATUSES == {S.CONFIRMED, S.CHECKED_IN}
    assert {s for s in S if is_final(s)} >= ATTENDANCE_STATUSES


def test_a_checked_in_person_is_not_cancelled_by_a_cancel_or_a_move() -> None:
    assert transition_outcome(S.CHECKED_IN, S.CANCELLED) is TransitionOutcome.REFUSED
    assert transition_outcome(S.VACCINATED, S.DID_NOT_ATTEND) is TransitionOutcome.REFUSED
    assert transition_outcome(S.DID_NOT_ATTEND, S.VACCINATED) is TransitionOutcome.REFUSED  # a walk-in then


SITE_STATES = [S.CONFIRMED, S.CHECKED_IN, S.VACCINATED, S.DID_NOT_ATTEND, S.CANCELLED]


@pytest.mark.parametrize("statuses", [list(p) for n in (1, 2) for p in itertools.product(SITE_STATES, repeat=n)])
def test_a_bookings_status_summarises_its_appointments(statuses: list[BookingStatus]) -> None:
    summary = summary_status(statuses)
    still_to_happen = [s for s in statuses if s in OPEN_STATUSES]
    if still_to_happen:
        assert summary == still_to_happen[0]  # the earliest appointment still to happen speaks for it
    elif S.DID_NOT_ATTEND in statuses:
        assert summary is S.DID_NOT_ATTEND
    elif S.VACCINATED in statuses:
        assert summary is S.VACCINATED
    else:
        assert summary is S.CANCELLED


def test_a_single_dose_booking_follows_its_appointment() -> None:
    for status in SITE_STATES:
        assert summary_status([status]) is status


def test_a_summary_needs_appointments_in_a_confirmed_bookings_states() -> None:
    with pytest.raises(ValueError):
        summary_status([])
    with pytest.raises(ValueError):
        summary_status([S.PENDING])
