"""POST /api/eligibility and the NationalAdmin register routes, over HTTP against devhost and the emulators."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.api.principal import encode_principal
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.policy import DEFAULT_POLICY

pytestmark = pytest.mark.e2e

ADMIN = {"x-ms-client-principal": encode_principal("Nat Admin", ["NationalAdmin"])}
TODAY = dt.date.today()
USED_NUMBERS: list[str] = []


def new_number() -> str:
    number = synthetic_nhs_number(uuid.uuid4().int % 850_000)
    USED_NUMBERS.append(number)
    return number


def years_ago(years: int, days: int = 40) -> str:
    return (TODAY.replace(year=TODAY.year - years) - dt.timedelta(days=days)).isoformat()


def person(number: str, born: str, **extra: Any) -> dict[str, Any]:
    return {"nhsNumber": number, "dateOfBirth": born, "givenName": "Eve", "familyName": "Endtoend",
            "postcode": "LS1 4AP", "mobile": "07700 900456", **extra}


def dose(n: int, days_ago: int, product: str = "PFIZER") -> dict[str, Any]:
    return {"product": product, "dose": n, "administeredAt": (TODAY - dt.timedelta(days=days_ago)).isoformat()}


def import_people(url: str, *people: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/api/admin/nims/patients", json={"patients": list(people)}, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def check(url: str, number: str, born: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/api/eligibility", json={"nhsNumber": number, "dateOfBirth": born}, headers=headers,
                      timeout=10)


@pytest.fixture
def default_policy(devhost_url: str) -> Iterator[None]:
    """Puts the shipped policy back after a test that changes it."""
    yield
    answer = httpx.put(f"{devhost_url}/api/admin/policy", headers=ADMIN, timeout=10,
                       json=DEFAULT_POLICY.model_dump(mode="json", by_alias=True))
    assert answer.status_code == 200
    time.sleep(1.1)  # every instance re-reads within POLICY_REFRESH_SECONDS


def test_an_eligible_person_gets_their_cohort_next_dose_and_products(devhost_url: str,
                                                                     client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(72)
    import_people(devhost_url, person(number, born))
    answer = check(devhost_url, number, born, client_headers)
    assert answer.status_code == 200
    assert answer.json() | {"earliestDate": None, "bookableFrom": None} == {
        "eligible": True, "reasons": [], "cohort": 4, "nextDose": 1, "earliestDate": None, "bookableFrom": None,
        "allowedProducts": ["PFIZER", "MODERNA", "ASTRAZENECA"],
        "followingDose": {"dose": 2, "minIntervalDays": 56, "maxIntervalDays": 84}}
    assert answer.json()["earliestDate"] == TODAY.isoformat()


def test_unknown_number_and_wrong_birth_date_get_byte_identical_answers(devhost_url: str,
                                                                        client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(50)
    import_people(devhost_url, person(number, born))
    unknown = check(devhost_url, new_number(), born, client_headers)
    wrong_birth_date = check(devhost_url, number, years_ago(51), client_headers)
    assert unknown.status_code == wrong_birth_date.status_code == 200
    assert unknown.content == wrong_birth_date.content
    assert unknown.json()["reasons"] == ["NOT_MATCHED"] and unknown.json()["eligible"] is False


@pytest.mark.parametrize(("body", "field"), [
    ({"nhsNumber": "999 000 0019", "dateOfBirth": "1960-01-01"}, "nhsNumber"),
    ({"nhsNumber": "12345", "dateOfBirth": "1960-01-01"}, "nhsNumber"),
    ({"nhsNumber": "9990000018", "dateOfBirth": "1960-02-30"}, "dateOfBirth"),
    ({"nhsNumber": "9990000018"}, "dateOfBirth"),
    ({"nhsNumber": "9990000018", "dateOfBirth": "1960-01-01", "surname": "x"}, "surname"),
])
def test_malformed_requests_are_422_naming_the_field(devhost_url: str, client_headers: dict[str, str],
                                                      body: dict[str, Any], field: str) -> None:
    answer = httpx.post(f"{devhost_url}/api/eligibility", json=body, headers=client_headers, timeout=10)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "VALIDATION_FAILED" and problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]]
    assert body["nhsNumber"] not in answer.text


def test_a_body_that_is_not_json_is_422_not_500(devhost_url: str, client_headers: dict[str, str]) -> None:
    answer = httpx.post(f"{devhost_url}/api/eligibility", content=b"{nope", timeout=10,
                        headers={**client_headers, "content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body"


def test_dose_two_is_offered_in_the_first_dose_product_from_the_interval(devhost_url: str,
                                                                         client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(45)
    import_people(devhost_url, person(number, born, vaccinations=[dose(1, 20, "ASTRAZENECA")]))
    body = check(devhost_url, number, born, client_headers).json()
    assert body["eligible"] is True and body["nextDose"] == 2
    assert body["allowedProducts"] == ["ASTRAZENECA"]
    assert body["earliestDate"] == (TODAY + dt.timedelta(days=56 - 20)).isoformat()


def test_a_booster_before_its_bookable_day_is_dose_not_due(devhost_url: str, client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(66)
    import_people(devhost_url, person(number, born, vaccinations=[dose(1, 100), dose(2, 30)]))
    body = check(devhost_url, number, born, client_headers).json()
    assert body["eligible"] is False and body["reasons"] == ["DOSE_NOT_DUE"] and body["nextDose"] == 3


def test_a_boosted_person_has_completed_the_course(devhost_url: str, client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(81)
    import_people(devhost_url, person(number, born, vaccinations=[dose(1, 300), dose(2, 240), dose(3, 100)]))
    body = check(devhost_url, number, born, client_headers).json()
    assert body["eligible"] is False and body["reasons"] == ["COURSE_COMPLETE"]


def test_a_child_without_flags_has_no_cohort(devhost_url: str, client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(14)
    import_people(devhost_url, person(number, born))
    body = check(devhost_url, number, born, client_headers).json()
    assert body["eligible"] is False and body["reasons"] == ["NO_COHORT"] and body["allowedProducts"] == ["PFIZER"]


def test_closing_a_cohort_takes_effect_within_seconds(devhost_url: str, client_headers: dict[str, str],
                                                       default_policy: None) -> None:
    number, born = new_number(), years_ago(35)
    import_people(devhost_url, person(number, born))
    assert check(devhost_url, number, born, client_headers).json()["cohort"] == 11
    closed = DEFAULT_POLICY.model_dump(mode="json", by_alias=True) | {"openCohorts": [1, 2, 3, 4, 5]}
    put = httpx.put(f"{devhost_url}/api/admin/policy", json=closed, headers=ADMIN, timeout=10)
    assert put.status_code == 200 and put.json()["openCohorts"] == [1, 2, 3, 4, 5]
    deadline = time.monotonic() + 5
    while True:
        body = check(devhost_url, number, born, client_headers).json()
        if body["reasons"] == ["COHORT_NOT_OPEN"] or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert body["reasons"] == ["COHORT_NOT_OPEN"]
    got = httpx.get(f"{devhost_url}/api/admin/policy", headers=ADMIN, timeout=10).json()
    assert got["version"] == put.json()["version"] and got["openCohorts"] == [1, 2, 3, 4, 5]


def test_a_put_based_on_a_stale_version_is_a_conflict(devhost_url: str, default_policy: None) -> None:
    read = httpx.get(f"{devhost_url}/api/admin/policy", headers=ADMIN, timeout=10).json()
    first = httpx.put(f"{devhost_url}/api/admin/policy", json=read, headers=ADMIN, timeout=10)
    assert first.status_code == 200 and first.json()["version"] == read["version"] + 1
    stale = httpx.put(f"{devhost_url}/api/admin/policy", json=read, headers=ADMIN, timeout=10)
    assert stale.status_code == 409 and stale.json()["code"] == "CONFLICT"


def test_an_invalid_policy_is_422_and_changes_nothing(devhost_url: str) -> None:
    before = httpx.get(f"{devhost_url}/api/admin/policy", headers=ADMIN, timeout=10).json()
    bad = DEFAULT_POLICY.model_dump(mode="json", by_alias=True)
    bad["primaryCourse"] = bad["primaryCourse"] | {"minIntervalDays": 90, "maxIntervalDays": 30}
    answer = httpx.put(f"{devhost_url}/api/admin/policy", json=bad, headers=ADMIN, timeout=10)
    assert answer.status_code == 422
    assert any(e["field"].startswith("primaryCourse") for e in answer.json()["errors"])
    assert httpx.get(f"{devhost_url}/api/admin/policy", headers=ADMIN, timeout=10).json() == before


def test_staff_routes_need_a_principal_with_the_national_admin_role(devhost_url: str) -> None:
    url = f"{devhost_url}/api/admin/policy"
    assert httpx.get(url, timeout=10).status_code == 401
    site_staff = {"x-ms-client-principal": encode_principal("Sam", ["SiteStaff"])}
    assert httpx.get(url, headers=site_staff, timeout=10).status_code == 403
    assert httpx.get(url, headers={"x-ms-client-principal": "not base64 json"}, timeout=10).status_code == 401
    assert httpx.post(f"{devhost_url}/api/admin/nims/patients", json={"patients": [{}]}, timeout=10).status_code == 401


def test_an_import_rejects_bad_records_by_index_and_imports_the_rest(devhost_url: str,
                                                                      client_headers: dict[str, str]) -> None:
    good, born = new_number(), years_ago(60)
    body = import_people(devhost_url, person(good, born), person("9990000019", born),
                         person(new_number(), "1990-13-01"), person(new_number(), born, flags=["vip"]))
    assert body["imported"] == 1
    assert [(r["index"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (1, "nhsNumber"), (2, "dateOfBirth"), (3, "flags[0]")]
    assert check(devhost_url, good, born, client_headers).json()["eligible"] is True
    again = import_people(devhost_url, person(good, born))  # safe to repeat
    assert again == {"imported": 1, "rejected": []}


def test_repeated_failed_matches_lock_the_number_with_retry_after(devhost_url: str) -> None:
    number, born = new_number(), years_ago(40)
    import_people(devhost_url, person(number, born))
    for attempt in range(5):
        headers = {"x-forwarded-for": f"203.0.113.{attempt + 1}"}  # a different caller each time
        assert check(devhost_url, number, years_ago(41), headers).json()["reasons"] == ["NOT_MATCHED"]
    locked = check(devhost_url, number, born, {"x-forwarded-for": "203.0.113.99"})
    assert locked.status_code == 429 and locked.json()["code"] == "RATE_LIMITED"
    assert int(locked.headers["retry-after"]) > 0


def test_one_client_calling_too_often_is_throttled(devhost_url: str, client_headers: dict[str, str]) -> None:
    number, born = new_number(), years_ago(33)
    import_people(devhost_url, person(number, born))
    statuses = [check(devhost_url, number, born, client_headers).status_code for _ in range(25)]
    assert statuses[:20] == [200] * 20
    assert 429 in statuses[20:]


def test_no_nhs_number_reaches_the_log(devhost_url: str, devhost_log: Path) -> None:
    # Runs last in this module: every number the tests above used must be absent from everything logged.
    log = devhost_log.read_text(errors="replace")
    assert log.strip(), "devhost logged nothing, so this test would prove nothing"
    leaked = [number for number in USED_NUMBERS if number in log]
    assert not leaked, f"{len(leaked)} NHS numbers appear in the devhost log"
