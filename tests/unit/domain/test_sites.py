"""Sites, their age bands, and session validation in Europe/London time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.domain.sites import AgeBand, Session, Site, SiteType, london_date, serves_age, wall_time_problem

FAST = settings(max_examples=200, deadline=None, database=None)
SPRING_FORWARD = dt.date(2021, 3, 28)  # last Sunday of March 2021: 01:00 GMT becomes 02:00 BST
FALL_BACK = dt.date(2021, 10, 31)  # last Sunday of October 2021: 02:00 BST becomes 01:00 GMT


def site_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "siteId": "leeds-first-direct-arena",
        "name": "Leeds First Direct Arena",
        "type": "vaccinationCentre",
        "odsCode": "rr8ab",
        "postcode": "ls2 8bY",
        "location": {"lat": 53.8036, "lon": -1.5442},
        "products": ["pfizer", "ASTRAZENECA"],
        "ageBands": [{"minAge": 18, "maxAge": None}],
    }
    body.update(changes)
    return body


def session_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "date": "2021-06-15",
        "start": "09:00",
        "end": "17:00",
        "slotMinutes": 10,
        "capacityPerSlot": 6,
        "product": "PFIZER",
    }
    body.update(changes)
    return body


def messages(error: ValidationError) -> str:
    return " | ".join(str(e["msg"]) for e in error.errors())


class TestSite:
    def test_a_site_parses_from_camel_case_json_with_codes_and_postcode_normalised(self):
        site = Site.model_validate(site_json())
        assert site.type is SiteType.VACCINATION_CENTRE
        assert site.ods_code == "RR8AB"
        assert site.postcode == "LS2 8BY"
        assert site.products == ("PFIZER", "ASTRAZENECA")
        assert site.age_bands == (AgeBand(min_age=18, max_age=None),)
        assert site.model_dump(mode="json")["ageBands"] == [{"minAge": 18, "maxAge": None}]

    def test_a_site_serialises_with_the_api_field_names_and_parses_back(self):
        site = Site.model_validate(site_json())
        assert Site.model_validate_json(site.model_dump_json()) == site
        assert set(site.model_dump()) == {
            "siteId",
            "name",
            "type",
            "odsCode",
            "postcode",
            "location",
            "products",
            "ageBands",
        }

    @pytest.mark.parametrize("kind", ["vaccinationCentre", "pharmacy", "gpPractice"])
    def test_the_three_site_types_are_accepted(self, kind: str):
        assert Site.model_validate(site_json(type=kind)).type == kind

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("type", "hospital"),
            ("postcode", "LS2"),  # a site has an address, so a full postcode
            ("postcode", "not a postcode"),
            ("odsCode", "R!"),
            ("name", "   "),
            ("products", []),
            ("products", ["PFIZER", "pfizer"]),
            ("products", ["PFIZER-2"]),
            ("ageBands", []),
            ("siteId", "has.dot"),
            ("siteId", "-leading-dash"),
            ("location", {"lat": 91, "lon": 0}),
            ("location", {"lat": 0, "lon": -181}),
            ("location", {"lat": float("nan"), "lon": 0}),
        ],
    )
    def test_an_invalid_field_is_refused(self, field: str, value: Any):
        with pytest.raises(ValidationError):
            Site.model_validate(site_json(**{field: value}))

    def test_an_unknown_field_is_refused(self):
        with pytest.raises(ValidationError, match="Extra inputs"):
            Site.model_validate(site_json(openingHours="9-5"))

    def test_a_site_offers_only_its_listed_products(self):
        site = Site.model_validate(site_json())
        assert site.offers("PFIZER")
        assert not site.offers("MODERNA")

    def test_a_site_serves_an_age_when_any_of_its_bands_admits_it(self):
        site = Site.model_validate(site_json(ageBands=[{"minAge": 12, "maxAge": 15}, {"minAge": 50, "maxAge": None}]))
        assert [age for age in (11, 12, 15, 16, 49, 50, 120) if site.serves_age(age)] == [12, 15, 50, 120]


class TestAgeBand:
    def test_both_ends_of_a_band_are_inclusive(self):
        band = AgeBand(min_age=18, max_age=64)
        assert [band.admits(age) for age in (17, 18, 64, 65)] == [False, True, True, False]

    def test_a_band_without_a_maximum_has_no_upper_limit(self):
        assert AgeBand(min_age=80).admits(125)

    def test_a_band_whose_maximum_is_below_its_minimum_is_refused(self):
        with pytest.raises(ValidationError, match="maxAge must not be below minAge"):
            AgeBand(min_age=30, max_age=29)

    def test_ages_must_be_whole_numbers_not_strings(self):
        with pytest.raises(ValidationError):
            AgeBand.model_validate({"minAge": "18"})

    @FAST
    @given(st.integers(0, 130), st.one_of(st.none(), st.integers(0, 130)), st.integers(0, 130))
    def test_a_band_admits_exactly_the_ages_between_its_ends(self, low: int, high: int | None, age: int):
        if high is not None and high < low:
            return
        band = AgeBand(min_age=low, max_age=high)
        assert band.admits(age) == (low <= age and (high is None or age <= high))
        assert serves_age((band,), age) == band.admits(age)

    def test_no_bands_serve_nobody(self):
        assert not serves_age((), 40)


class TestSession:
    def test_a_session_parses_from_json_with_the_product_upper_cased(self):
        session = Session.model_validate(session_json(product="pfizer"))
        assert session.product == "PFIZER"
        assert (session.start, session.end) == (dt.time(9), dt.time(17))
        assert session.slot_count == 48

    def test_session_times_are_london_wall_clock_times_in_summer_and_winter(self):
        summer = Session.model_validate(session_json(date="2021-06-15"))
        winter = Session.model_validate(session_json(date="2021-01-15"))
        assert summer.starts_at == dt.datetime(2021, 6, 15, 8, tzinfo=dt.UTC)
        assert winter.starts_at == dt.datetime(2021, 1, 15, 9, tzinfo=dt.UTC)

    def test_an_end_at_or_before_the_start_is_refused(self):
        for end in ("09:00", "08:59"):
            with pytest.raises(ValidationError, match="end must be after start"):
                Session.model_validate(session_json(end=end))

    def test_a_session_shorter_than_one_slot_is_refused(self):
        with pytest.raises(ValidationError, match="at least one slot"):
            Session.model_validate(session_json(start="09:00", end="09:09", slotMinutes=10))

    def test_a_partial_last_slot_is_dropped(self):
        session = Session.model_validate(session_json(start="09:00", end="09:50", slotMinutes=15))
        assert session.slot_count == 3

    @pytest.mark.parametrize(("minutes", "ok"), [(4, False), (5, True), (120, True), (121, False)])
    def test_slot_length_is_between_5_and_120_minutes(self, minutes: int, ok: bool):
        body = session_json(start="08:00", end="18:00", slotMinutes=minutes)
        if ok:
            assert Session.model_validate(body).slot_minutes == minutes
        else:
            with pytest.raises(ValidationError):
                Session.model_validate(body)

    @pytest.mark.parametrize(("capacity", "ok"), [(0, False), (1, True), (1000, True), (1001, False)])
    def test_capacity_per_slot_is_between_1_and_1000(self, capacity: int, ok: bool):
        body = session_json(capacityPerSlot=capacity)
        if ok:
            assert Session.model_validate(body).capacity_per_slot == capacity
        else:
            with pytest.raises(ValidationError):
                Session.model_validate(body)

    @pytest.mark.parametrize(("field", "value"), [("slotMinutes", "10"), ("capacityPerSlot", 6.0), ("product", 7)])
    def test_numbers_and_codes_are_not_coerced_from_other_types(self, field: str, value: Any):
        with pytest.raises(ValidationError):
            Session.model_validate(session_json(**{field: value}))

    @pytest.mark.parametrize("product", ["", "PFIZER 2", "PFIZER-2", "2PFIZER"])
    def test_a_product_that_is_not_a_policy_style_code_is_refused(self, product: str):
        with pytest.raises(ValidationError):
            Session.model_validate(session_json(product=product))

    def test_times_with_seconds_are_refused(self):
        with pytest.raises(ValidationError, match="whole minutes"):
            Session.model_validate(session_json(start="09:00:30"))

    def test_times_with_an_offset_are_refused_because_sessions_are_in_london_time(self):
        with pytest.raises(ValidationError, match="without an offset"):
            Session.model_validate(session_json(start="09:00+01:00"))

    def test_an_impossible_date_is_refused(self):
        with pytest.raises(ValidationError):
            Session.model_validate(session_json(date="2021-02-30"))

    def test_a_session_on_the_last_sunday_of_march_starts_in_british_summer_time(self):
        session = Session.model_validate(session_json(date=str(SPRING_FORWARD)))
        assert session.starts_at == dt.datetime(2021, 3, 28, 8, tzinfo=dt.UTC)
        assert session.ends_at == dt.datetime(2021, 3, 28, 16, tzinfo=dt.UTC)

    def test_a_session_on_the_last_sunday_of_october_starts_in_greenwich_mean_time(self):
        session = Session.model_validate(session_json(date=str(FALL_BACK)))
        assert session.starts_at == dt.datetime(2021, 10, 31, 9, tzinfo=dt.UTC)
        assert session.ends_at == dt.datetime(2021, 10, 31, 17, tzinfo=dt.UTC)

    def test_a_session_across_the_march_change_is_an_hour_shorter_in_real_time(self):
        session = Session.model_validate(
            session_json(date=str(SPRING_FORWARD), start="00:00", end="04:00", slotMinutes=30)
        )
        assert session.ends_at - session.starts_at == dt.timedelta(hours=3)
        assert session.slot_count == 6

    def test_a_session_across_the_october_change_is_an_hour_longer_in_real_time(self):
        session = Session.model_validate(session_json(date=str(FALL_BACK), start="00:00", end="04:00", slotMinutes=30))
        assert session.ends_at - session.starts_at == dt.timedelta(hours=5)
        assert session.slot_count == 10

    def test_a_start_in_the_hour_the_clocks_skip_is_refused(self):
        with pytest.raises(ValidationError, match="start 01:30 does not exist on that day"):
            Session.model_validate(session_json(date=str(SPRING_FORWARD), start="01:30", end="04:00"))

    def test_an_end_in_the_hour_the_clocks_repeat_is_refused(self):
        with pytest.raises(ValidationError, match="end 01:30 happens twice on that day"):
            Session.model_validate(session_json(date=str(FALL_BACK), start="00:00", end="01:30"))

    def test_wall_time_problem_is_none_for_ordinary_times_and_either_side_of_the_changes(self):
        assert wall_time_problem(dt.date(2021, 6, 15), dt.time(1, 30)) is None
        assert wall_time_problem(SPRING_FORWARD, dt.time(0, 59)) is None
        assert wall_time_problem(SPRING_FORWARD, dt.time(2, 0)) is None
        assert wall_time_problem(FALL_BACK, dt.time(0, 59)) is None
        assert wall_time_problem(FALL_BACK, dt.time(2, 0)) is None

    def test_sessions_of_one_product_overlap_when_their_times_intersect(self):
        morning = Session.model_validate(session_json(start="09:00", end="12:00"))
        late_morning = Session.model_validate(session_json(start="11:50", end="13:00"))
        afternoon = Session.model_validate(session_json(start="12:00", end="17:00"))
        other_product = Session.model_validate(session_json(start="09:00", end="12:00", product="MODERNA"))
        next_day = Session.model_validate(session_json(date="2021-06-16", start="09:00", end="12:00"))
        assert morning.overlaps(late_morning) and late_morning.overlaps(morning)
        assert not morning.overlaps(afternoon)
        assert not morning.overlaps(other_product)
        assert not morning.overlaps(next_day)

    def test_an_unknown_session_field_is_refused(self):
        with pytest.raises(ValidationError, match="Extra inputs"):
            Session.model_validate(session_json(siteId="x"))


def test_the_london_date_of_an_instant_near_midnight_follows_the_london_clock():
    assert london_date(dt.datetime(2021, 6, 14, 23, 30, tzinfo=dt.UTC)) == dt.date(2021, 6, 15)
    assert london_date(dt.datetime(2021, 1, 14, 23, 30, tzinfo=dt.UTC)) == dt.date(2021, 1, 14)
    with pytest.raises(ValueError, match="timezone-aware"):
        london_date(dt.datetime(2021, 1, 14, 23, 30))
