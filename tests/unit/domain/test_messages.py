"""Notification rules: en-GB wording and London times, reminder windows, delivery ids and states, retries."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.messages import (
    RESCAN_MARGIN,
    RULES_BY_NAME,
    Delivery,
    Message,
    ReminderJob,
    Visit,
    email_content,
    event_delivery_id,
    london_time,
    opt_out_applies,
    reminder_delivery_id,
    reminder_scan,
    repeatability_id,
    resume,
    retry_delay,
    sms_text,
    verdict,
)

UTC = dt.UTC
SITE_URL = "https://book.example.org/"
VISIT = Visit(1, "Riverside Centre", "AB1 2CD", dt.datetime(2026, 6, 2, 8, 30, tzinfo=UTC))
SECOND = Visit(2, "Town Hall", "EF3 4GH", dt.datetime(2026, 8, 25, 13, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (dt.datetime(2026, 6, 2, 8, 30, tzinfo=UTC), "Tuesday 2 June 2026 at 9:30am"),  # BST
        (dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC), "Monday 5 January 2026 at 12pm"),  # GMT
        (dt.datetime(2026, 1, 5, 0, 15, tzinfo=UTC), "Monday 5 January 2026 at 12:15am"),
        (dt.datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Sunday 29 March 2026 at 12:59am"),  # before the clocks go
        (dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Sunday 29 March 2026 at 2am"),  # after
        (dt.datetime(2026, 10, 25, 17, 5, tzinfo=UTC), "Sunday 25 October 2026 at 5:05pm"),
    ],
)
def test_times_are_shown_in_london_in_plain_english(instant: dt.datetime, expected: str) -> None:
    assert london_time(instant) == expected


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        london_time(dt.datetime(2026, 1, 1, 9, 0))


def test_a_confirmation_names_reference_sites_times_and_how_to_cancel_or_change() -> None:
    text = sms_text(Message("confirmation", "ABCD2345", (SECOND, VISIT)), SITE_URL)
    assert text.splitlines() == [
        "Your vaccination is booked.",
        "Dose 1: Tuesday 2 June 2026 at 9:30am, Riverside Centre, AB1 2CD",
        "Dose 2: Tuesday 25 August 2026 at 2pm, Town Hall, EF3 4GH",
        "Your booking reference is ABCD2345.",
        "To cancel or change it, go to https://book.example.org/manage and enter your booking reference.",
    ]


def test_a_change_names_the_new_time_and_the_one_it_replaces() -> None:
    text = sms_text(Message("change", "ABCD2345", (SECOND,), previous=(VISIT,)), SITE_URL)
    assert "has changed" in text
    assert text.index("25 August") < text.index("This replaces:") < text.index("2 June")


def test_a_cancellation_and_a_reminder_say_what_to_do_next() -> None:
    cancelled = sms_text(Message("cancellation", "ABCD2345", (VISIT,)), SITE_URL)
    assert "cancelled" in cancelled and "To book again, go to https://book.example.org." in cancelled
    reminder = sms_text(Message("reminder", "ABCD2345", (VISIT,)), SITE_URL)
    assert reminder.startswith("Reminder:") and "Tuesday 2 June 2026 at 9:30am" in reminder
    assert "https://book.example.org/manage" in reminder


@given(st.sampled_from(["confirmation", "change", "cancellation", "reminder"]),
       st.text(alphabet="ABCDEFGHJKMNPQRSTVWXYZ23456789", min_size=6, max_size=12))
def test_texts_use_plain_characters_only(kind: str, reference: str) -> None:
    # Outside the GSM alphabet a text is sent as UCS-2, in segments of 70 characters instead of 160.
    text = sms_text(Message(kind, reference, (VISIT,), (SECOND,)), SITE_URL)  # type: ignore[arg-type]
    assert text.isascii() and "`" not in text and reference in text


def test_an_email_says_the_same_with_its_html_escaped() -> None:
    content = email_content(Message("confirmation", "ABCD2345", (Visit(1, "St <Mary's>", "AB1 2CD", VISIT.start),)),
                            SITE_URL)
    assert content.subject == "Your vaccination is booked"
    assert "St <Mary's>" in content.plain_text
    assert "St &lt;Mary&#x27;s&gt;" in content.html and "<Mary" not in content.html


def test_opt_out_stops_everything_but_the_confirmation_they_asked_for() -> None:
    assert not opt_out_applies("confirmation")
    assert opt_out_applies("change")  # a stranger could move a booking naming someone's number, again and again
    assert opt_out_applies("cancellation")
    assert opt_out_applies("reminder")


# --- Reminders --------------------------------------------------------------------------------------


def test_reminders_apply_to_appointments_booked_before_their_lead_time() -> None:
    start = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    day, three_days = RULES_BY_NAME["24h"], RULES_BY_NAME["3d"]
    assert day.applies(start - dt.timedelta(days=2), start)
    assert not day.applies(start - dt.timedelta(hours=5), start)  # its confirmation arrived within the day
    assert three_days.applies(start - dt.timedelta(days=4), start)
    assert not three_days.applies(start - dt.timedelta(days=2), start)


def test_each_scan_covers_the_starts_whose_reminder_fell_due_since_the_last_one() -> None:
    rule = RULES_BY_NAME["24h"]
    now = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    last = now - dt.timedelta(minutes=5)
    after, until = reminder_scan(rule, last, now)
    assert (after, until) == (last - RESCAN_MARGIN + rule.lead, now + rule.lead)
    first_after, _ = reminder_scan(rule, None, now)
    assert first_after == now - RESCAN_MARGIN + rule.lead  # the first run starts now: no back-fill
    # A scan mark from the future (a clock that jumped) never narrows the window to nothing.
    assert reminder_scan(rule, now + dt.timedelta(hours=1), now)[0] == first_after


# --- Deliveries -------------------------------------------------------------------------------------


def _job(start: dt.datetime, rule: str = "24h") -> ReminderJob:
    return ReminderJob(rule=rule, site_id="S1", appointment_id="ABCD2345", reference="ABCD2345",
                       slot_id="S1.2026-03-10.0900.pfizer", start=start)


def test_delivery_ids_name_the_channel_and_a_reminder_its_start() -> None:
    start = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    assert event_delivery_id("ABCD2345.2.confirmed", "sms") == "sms.event.ABCD2345.2.confirmed"
    assert event_delivery_id("ABCD2345.2.confirmed", "email") != event_delivery_id("ABCD2345.2.confirmed", "sms")
    moved = reminder_delivery_id(_job(start + dt.timedelta(days=1)), "sms")
    assert reminder_delivery_id(_job(start), "sms") == (
        "sms.reminder-24h.ABCD2345.S1.2026-03-10.0900.pfizer.20260310T0900Z")
    assert moved != reminder_delivery_id(_job(start), "sms")
    assert reminder_delivery_id(_job(start, "3d"), "sms") != reminder_delivery_id(_job(start), "sms")
    assert "/" not in event_delivery_id("a/b?c#d e", "sms")


def test_repeatability_ids_are_guids_stable_per_generation() -> None:
    first = repeatability_id("sms.event.X", 1)
    assert uuid.UUID(first) and first == repeatability_id("sms.event.X", 1)
    assert first != repeatability_id("sms.event.X", 2)
    assert first != repeatability_id("sms.event.Y", 1)


NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
WINDOW = dt.timedelta(minutes=4)


def _delivery(state: str, first_sent: dt.datetime = NOW) -> Delivery:
    return Delivery("sms.event.X", "sms", "confirmation", "X", state, 1, first_sent, first_sent)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", ["sent", "failed", "suppressed", "unconfirmed"])
def test_a_settled_delivery_is_never_sent_again(state: str) -> None:
    assert resume(_delivery(state), NOW + dt.timedelta(days=1), WINDOW) == "done"


def test_a_delivery_acs_refused_is_sent_as_a_new_request() -> None:
    assert resume(_delivery("retrying", NOW - dt.timedelta(hours=1)), NOW, WINDOW) == "next-generation"
    again = _delivery("retrying").next_generation(NOW)
    assert (again.state, again.generation) == ("sending", 2)
    assert again.repeatability_id != _delivery("retrying").repeatability_id


def test_a_delivery_of_unknown_outcome_is_repeated_within_the_window_and_given_up_after() -> None:
    assert resume(_delivery("sending", NOW - dt.timedelta(minutes=1)), NOW, WINDOW) == "resend"
    assert resume(_delivery("sending", NOW - dt.timedelta(minutes=5)), NOW, WINDOW) == "unconfirmed"


@pytest.mark.parametrize(("status", "expected"), [
    (202, "sent"), (408, "retry"), (429, "retry"), (500, "retry"), (503, "retry"),
    (400, "permanent"), (403, "permanent"), (404, "permanent"), (412, "permanent")])
def test_acs_statuses_sort_into_sent_retry_and_permanent(status: int, expected: str) -> None:
    assert verdict(status) == expected


def test_retries_back_off_exponentially_unless_acs_says_when() -> None:
    assert [retry_delay(n, 1.0, 30.0, None) for n in (1, 2, 3, 6)] == [1.0, 2.0, 4.0, 30.0]
    assert retry_delay(1, 1.0, 30.0, 7.0) == 7.0
    assert retry_delay(1, 1.0, 30.0, 600.0) == 30.0
