"""Recording a dose, pure: `administeredAt` as a time or a date, the rules a dose must pass, its id, the audit."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from shared.domain.audit import AuditAction, AuditEntry, audit_entry
from shared.domain.eligibility import PatientFacts, Vaccination, decide_eligibility
from shared.domain.policy import DEFAULT_POLICY
from shared.domain.register import RegisterRecord
from shared.domain.sites import AgeBand
from shared.domain.vaccination import (
    DoseRefusal,
    DoseRefused,
    WalkInSite,
    check_booked_dose,
    check_walk_in,
    vaccination_id,
)

BORN = dt.date(1960, 5, 5)
SITE = WalkInSite(("PFIZER", "MODERNA", "ASTRAZENECA"), (AgeBand(min_age=12),))
KEY = b"test-key"


def given(product: str, dose: int, at: str) -> Vaccination:
    return Vaccination.model_validate({"product": product, "dose": dose, "administeredAt": at})


@pytest.mark.parametrize(("value", "day"), [
    ("2021-03-01", dt.date(2021, 3, 1)),
    ("2021-03-01T09:30:00+00:00", dt.date(2021, 3, 1)),
    ("2021-06-01T23:30:00Z", dt.date(2021, 6, 2)),  # 00:30 BST: the London date is the next day
    ("2021-06-02T00:30:00+01:00", dt.date(2021, 6, 2)),
    ("2021-12-31T23:59:59-05:00", dt.date(2022, 1, 1)),
])
def test_administered_at_takes_a_time_with_offset_or_a_date_and_rules_use_the_london_date(value: str,
                                                                                         day: dt.date) -> None:
    vaccination = given("pfizer", 1, value)
    assert vaccination.administered_on == day
    assert vaccination.model_dump(mode="json")["administeredAt"].startswith(value[:16])  # the time is kept


@pytest.mark.parametrize("value", ["2021-06-01T23:30:00", "2021-02-30", "yesterday", "2021-06-01 25:00+00:00"])
def test_a_time_without_offset_or_an_impossible_date_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        given("PFIZER", 1, value)
    assert [e["loc"] for e in refused.value.errors()] == [("administeredAt",)]


def test_a_register_record_with_a_full_timestamp_round_trips_and_counts_its_london_date() -> None:
    record = RegisterRecord.model_validate({
        "nhsNumber": "9990000018", "dateOfBirth": "1960-05-05", "givenName": "A", "familyName": "B",
        "postcode": "LS1 4AP", "vaccinations": [
            {"product": "PFIZER", "dose": 1, "administeredAt": "2021-06-01T23:30:00+00:00"}]})
    again = RegisterRecord.model_validate(record.model_dump(mode="json"))
    assert again == record
    facts = PatientFacts(date_of_birth=BORN, vaccinations=again.vaccinations)
    decision = decide_eligibility(facts, DEFAULT_POLICY, dt.date(2021, 6, 10))
    assert decision.next_dose == 2 and decision.earliest_date == dt.date(2021, 6, 2) + dt.timedelta(days=56)


def test_a_walk_in_is_given_the_next_dose_by_the_rules_of_that_day() -> None:
    at = dt.datetime(2021, 9, 1, 10, tzinfo=dt.UTC)
    assert check_walk_in((), BORN, (), DEFAULT_POLICY, product="PFIZER", given_at=at, site=SITE,
                         reason_given=False) == 1
    history = (given("PFIZER", 1, "2021-06-01"),)
    assert check_walk_in(history, BORN, (), DEFAULT_POLICY, product="PFIZER", given_at=at, site=SITE,
                         reason_given=False) == 2
    assert check_walk_in(history, BORN, (), DEFAULT_POLICY, product="PFIZER", given_at=dt.date(2021, 6, 20),
                         site=SITE, reason_given=False) == DoseRefused(DoseRefusal.TOO_EARLY)


def test_a_walk_ins_second_dose_of_another_product_needs_a_reason() -> None:
    history = (given("PFIZER", 1, "2021-06-01"),)
    at = dt.datetime(2021, 9, 1, 10, tzinfo=dt.UTC)
    assert check_walk_in(history, BORN, (), DEFAULT_POLICY, product="MODERNA", given_at=at, site=SITE,
                         reason_given=False) == DoseRefused(DoseRefusal.PRODUCT_MISMATCH)
    assert check_walk_in(history, BORN, (), DEFAULT_POLICY, product="MODERNA", given_at=at, site=SITE,
                         reason_given=True) == 2


def test_a_walk_in_refusals_name_the_rule() -> None:
    at = dt.datetime(2021, 9, 1, 10, tzinfo=dt.UTC)
    child = dt.date(2015, 1, 1)
    refused = check_walk_in((), child, (), DEFAULT_POLICY, product="PFIZER", given_at=at, site=SITE,
                            reason_given=False)
    assert isinstance(refused, DoseRefused) and refused.code is DoseRefusal.NOT_ELIGIBLE
    assert "NO_COHORT" in refused.reasons
    young = dt.date(1995, 1, 1)
    assert check_walk_in((), young, (), DEFAULT_POLICY, product="ASTRAZENECA", given_at=at, site=SITE,
                         reason_given=False) == DoseRefused(DoseRefusal.PRODUCT_NOT_ALLOWED)
    pharmacy = WalkInSite(("MODERNA",), (AgeBand(min_age=70),))
    assert check_walk_in((), BORN, (), DEFAULT_POLICY, product="PFIZER", given_at=at, site=pharmacy,
                         reason_given=False) == DoseRefused(DoseRefusal.PRODUCT_NOT_OFFERED)
    assert check_walk_in((), BORN, (), DEFAULT_POLICY, product="MODERNA", given_at=at, site=pharmacy,
                         reason_given=False) == DoseRefused(DoseRefusal.AGE_NOT_SERVED)
    done = (given("PFIZER", 1, "2021-01-01"), given("PFIZER", 2, "2021-03-01"), given("PFIZER", 3, "2021-06-01"))
    finished = check_walk_in(done, BORN, (), DEFAULT_POLICY, product="PFIZER", given_at=at, site=SITE,
                             reason_given=False)
    assert isinstance(finished, DoseRefused) and finished.reasons == ("COURSE_COMPLETE",)


def test_a_booked_dose_already_on_the_record_is_refused_but_its_own_record_is_not() -> None:
    at = dt.datetime(2021, 9, 1, 10, tzinfo=dt.UTC)
    mine = vaccination_id(KEY, "9990000018", 1)
    elsewhere = (given("PFIZER", 1, "2021-08-01"),)
    assert check_booked_dose(elsewhere, BORN, DEFAULT_POLICY, dose=1, product="PFIZER", given_at=at,
                             reason_given=False, vaccination=mine) == DoseRefused(DoseRefusal.ALREADY_VACCINATED)
    ours = (Vaccination(product="PFIZER", dose=1, administered_at=at, vaccination_id=mine),)
    assert check_booked_dose(ours, BORN, DEFAULT_POLICY, dose=1, product="PFIZER", given_at=at,
                             reason_given=False, vaccination=mine) is None


def test_a_vaccination_id_is_the_same_for_the_same_dose_and_reveals_nothing() -> None:
    first = vaccination_id(KEY, "9990000018", 1)
    assert first == vaccination_id(KEY, "9990000018", 1)
    assert first != vaccination_id(KEY, "9990000018", 2) != vaccination_id(b"other", "9990000018", 1)
    assert "9990000018" not in first and first.startswith("vac-")


def test_an_audit_entry_holds_ids_only_and_refuses_an_nhs_number() -> None:
    at = dt.datetime(2021, 6, 1, 23, 30, tzinfo=dt.UTC)
    entry = audit_entry(AuditAction.CHECKED_IN, "staff-1", at, site_id="VC001", reference="BCDFGHJKM", once_per="x")
    assert set(entry.model_dump()) == {"entryId", "at", "actor", "action", "siteId", "reference"}
    assert entry.day == dt.date(2021, 6, 2) and entry.partition == "VC001.2021-06-02"
    assert entry == audit_entry(AuditAction.CHECKED_IN, "staff-1", at, site_id="VC001", reference="BCDFGHJKM",
                                once_per="x")
    for leaking in ({"reference": "9990000018"}, {"reference": "999 000 0018"}, {"actor": "9990000018"}):
        with pytest.raises(ValidationError):
            AuditEntry.model_validate({**entry.model_dump(), **leaking})
    national = audit_entry(AuditAction.POLICY_CHANGED, "admin", at)
    assert national.partition == "national.2021-06-02"
