"""Slot generation from sessions: deterministic ids, UTC times across clock changes, capacity."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.domain.sites import LONDON, Session
from shared.domain.slots import (
    Slot,
    generate_slots,
    parse_slot_id,
    remaining,
    session_id,
    session_id_of,
    slot_id,
)

FAST = settings(max_examples=100, deadline=None, database=None)
SITE = "leeds-arena"
SPRING_FORWARD = dt.date(2021, 3, 28)
FALL_BACK = dt.date(2021, 10, 31)


def session(day: dt.date = dt.date(2021, 6, 15), start: str = "09:00", end: str = "10:00", **kw: Any) -> Session:
    body: dict[str, Any] = {
        "date": day.isoformat(),
        "start": start,
        "end": end,
        "slotMinutes": 15,
        "capacityPerSlot": 4,
        "product": "PFIZER",
    }
    body.update(kw)
    return Session.model_validate(body)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def london_wall_times(slots: tuple[Slot, ...]) -> list[str]:
    return [s.start.astimezone(LONDON).strftime("%H:%M %Z") for s in slots]


def test_a_session_is_cut_into_consecutive_slots_with_full_capacity_and_nothing_booked():
    slots = generate_slots(SITE, session())
    assert [s.start for s in slots] == [utc(2021, 6, 15, 8, m) for m in (0, 15, 30, 45)]
    assert [s.end for s in slots] == [
        utc(2021, 6, 15, 8, 15),
        utc(2021, 6, 15, 8, 30),
        utc(2021, 6, 15, 8, 45),
        utc(2021, 6, 15, 9, 0),
    ]
    assert {(s.capacity, s.booked, remaining(s)) for s in slots} == {(4, 0, 4)}
    assert {(s.site_id, s.product, s.local_date) for s in slots} == {(SITE, "PFIZER", dt.date(2021, 6, 15))}


def test_slot_times_are_aware_utc_datetimes():
    for s in generate_slots(SITE, session()):
        assert s.start.tzinfo is dt.UTC and s.end.tzinfo is dt.UTC


def test_slot_ids_name_site_london_date_time_and_product():
    slots = generate_slots(SITE, session())
    assert [s.slot_id for s in slots] == [
        "leeds-arena.20210615.0900.PFIZER",
        "leeds-arena.20210615.0915.PFIZER",
        "leeds-arena.20210615.0930.PFIZER",
        "leeds-arena.20210615.0945.PFIZER",
    ]


def test_slot_ids_are_url_safe():
    for s in generate_slots(SITE, session()):
        assert quote(s.slot_id, safe="") == s.slot_id
        assert re.fullmatch(r"[A-Za-z0-9._-]+", s.slot_id)


def test_generating_the_same_session_twice_gives_identical_slots():
    assert generate_slots(SITE, session()) == generate_slots(SITE, session())


def test_slots_differing_in_site_date_time_or_product_have_different_ids():
    ids = {
        generate_slots(site, session(day, start, end, product=product))[0].slot_id
        for site in ("a", "b")
        for day in (dt.date(2021, 6, 15), dt.date(2021, 6, 16))
        for start, end in (("09:00", "10:00"), ("09:15", "10:00"))
        for product in ("PFIZER", "MODERNA")
    }
    assert len(ids) == 16


def test_every_slot_belongs_to_its_session_whose_id_is_deterministic():
    s = session()
    owner = session_id(SITE, dt.date(2021, 6, 15), dt.time(9), "PFIZER")
    assert owner == session_id_of(SITE, s) == "leeds-arena.20210615.0900.PFIZER.session"
    assert {slot.session_id for slot in generate_slots(SITE, s)} == {owner}


def test_a_session_id_never_equals_a_slot_id_so_both_can_share_a_partition():
    s = session()
    assert session_id_of(SITE, s) not in {slot.slot_id for slot in generate_slots(SITE, s)}
    assert parse_slot_id(session_id_of(SITE, s)) is None


def test_in_winter_london_time_is_utc():
    slots = generate_slots(SITE, session(dt.date(2021, 1, 15)))
    assert slots[0].start == utc(2021, 1, 15, 9)


def test_a_session_on_the_last_sunday_of_march_is_in_summer_time():
    slots = generate_slots(SITE, session(SPRING_FORWARD, "09:00", "17:00"))
    assert slots[0].start == utc(2021, 3, 28, 8)
    assert slots[-1].end == utc(2021, 3, 28, 16)
    assert len(slots) == 32


def test_a_session_on_the_last_sunday_of_october_is_in_winter_time():
    slots = generate_slots(SITE, session(FALL_BACK, "09:00", "17:00"))
    assert slots[0].start == utc(2021, 10, 31, 9)
    assert slots[-1].end == utc(2021, 10, 31, 17)
    assert len(slots) == 32


def test_a_session_across_the_march_change_has_no_slot_in_the_skipped_hour():
    slots = generate_slots(SITE, session(SPRING_FORWARD, "00:00", "04:00", slotMinutes=30))
    assert london_wall_times(slots) == [
        "00:00 GMT",
        "00:30 GMT",
        "02:00 BST",
        "02:30 BST",
        "03:00 BST",
        "03:30 BST",
    ]
    assert all(s.end - s.start == dt.timedelta(minutes=30) for s in slots)
    assert [s.slot_id.split(".")[2] for s in slots] == ["0000", "0030", "0200", "0230", "0300", "0330"]


def test_a_session_across_the_october_change_has_the_repeated_hour_twice_with_distinct_ids():
    slots = generate_slots(SITE, session(FALL_BACK, "00:00", "03:00", slotMinutes=30))
    assert london_wall_times(slots) == [
        "00:00 BST",
        "00:30 BST",
        "01:00 BST",
        "01:30 BST",
        "01:00 GMT",
        "01:30 GMT",
        "02:00 GMT",
        "02:30 GMT",
    ]
    assert [s.slot_id.split(".")[2] for s in slots] == [
        "0000",
        "0030",
        "0100BST",
        "0130BST",
        "0100GMT",
        "0130GMT",
        "0200",
        "0230",
    ]
    assert len({s.slot_id for s in slots}) == len(slots)
    assert {s.local_date for s in slots} == {FALL_BACK}
    assert slots[0].start == utc(2021, 10, 30, 23)


def test_a_slot_id_parses_back_to_its_site_and_exact_start():
    for day, start, end in (
        (dt.date(2021, 6, 15), "09:00", "10:00"),
        (FALL_BACK, "00:00", "03:00"),
        (SPRING_FORWARD, "00:00", "04:00"),
    ):
        for s in generate_slots(SITE, session(day, start, end)):
            key = parse_slot_id(s.slot_id)
            assert key is not None
            assert (key.site_id, key.product, key.start) == (SITE, "PFIZER", s.start)


def test_slot_id_from_any_aware_instant_is_the_generated_id():
    s = generate_slots(SITE, session())[1]
    assert slot_id(SITE, s.start.astimezone(dt.timezone(dt.timedelta(hours=-5))), "PFIZER") == s.slot_id
    with pytest.raises(ValueError, match="timezone-aware"):
        slot_id(SITE, dt.datetime(2021, 6, 15, 9), "PFIZER")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nonsense",
        "leeds-arena.20210230.0900.PFIZER",  # 30 February
        "leeds-arena.20210615.2400.PFIZER",
        "leeds-arena.20210615.0900.pfizer",
        "leeds-arena.20210615.0900BST.PFIZER",  # a zone on a time that happens once
        "leeds-arena.20211031.0130.PFIZER",  # no zone on a time that happens twice
        "leeds-arena.20210328.0130.PFIZER",  # a time the clocks skip
        "leeds.arena.20210615.0900.PFIZER",
        "leeds-arena.20210615.0900.PFIZER.session",
    ],
)
def test_a_malformed_or_impossible_slot_id_does_not_parse(text: str):
    assert parse_slot_id(text) is None


def test_remaining_never_goes_below_zero_when_capacity_is_lowered_after_booking():
    s = generate_slots(SITE, session())[0]
    assert remaining(s.model_copy(update={"booked": 3})) == 1
    assert remaining(s.model_copy(update={"capacity": 2, "booked": 3})) == 0


def test_a_slot_document_round_trips_through_json_in_camel_case():
    s = generate_slots(SITE, session())[0]
    doc = s.model_dump(mode="json")
    assert doc["slotId"] == s.slot_id and doc["localDate"] == "2021-06-15" and doc["start"].endswith("Z")
    assert Slot.model_validate(doc) == s


def test_a_slot_refuses_naive_times_an_end_before_its_start_and_negative_counts():
    doc = generate_slots(SITE, session())[0].model_dump(mode="json")
    with pytest.raises(ValidationError):
        Slot.model_validate({**doc, "start": "2021-06-15T08:00:00"})
    with pytest.raises(ValidationError, match="end must be after start"):
        Slot.model_validate({**doc, "end": doc["start"]})
    with pytest.raises(ValidationError):
        Slot.model_validate({**doc, "booked": -1})


def test_a_slot_stores_its_times_in_utc_whatever_offset_it_was_given():
    doc = generate_slots(SITE, session())[0].model_dump(mode="json")
    s = Slot.model_validate({**doc, "start": "2021-06-15T09:00:00+01:00", "end": "2021-06-15T09:15:00+01:00"})
    assert s.start == utc(2021, 6, 15, 8) and s.start.tzinfo is dt.UTC


@FAST
@given(
    day=st.dates(dt.date(2021, 1, 1), dt.date(2023, 12, 31)),
    start_minutes=st.integers(0, 22 * 60),
    length_minutes=st.integers(5, 12 * 60),
    slot_minutes=st.integers(5, 120),
)
def test_slots_tile_the_session_from_its_start_with_whole_slots_only(
    day: dt.date, start_minutes: int, length_minutes: int, slot_minutes: int
):
    start = dt.time(*divmod(start_minutes, 60))
    end_minutes = min(start_minutes + length_minutes, 23 * 60 + 59)
    end = dt.time(*divmod(end_minutes, 60))
    try:
        s = session(day, start.strftime("%H:%M"), end.strftime("%H:%M"), slotMinutes=slot_minutes)
    except ValidationError:
        return  # shorter than a slot, or a start/end the clocks skip or repeat
    slots = generate_slots(SITE, s)
    length = dt.timedelta(minutes=slot_minutes)
    assert len(slots) == (s.ends_at - s.starts_at) // length
    assert slots[0].start == s.starts_at
    assert slots[-1].end <= s.ends_at < slots[-1].end + length
    assert all(a.end == b.start for a, b in itertools.pairwise(slots))
    assert len({x.slot_id for x in slots}) == len(slots)
    assert all((key := parse_slot_id(x.slot_id)) is not None and key.start == x.start for x in slots)
