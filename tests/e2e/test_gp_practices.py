"""GP practices end to end: a list uploaded with the Blob SDK to Azurite, checked by the Event Grid blob trigger
through devhost, its report, invitations texted to /dev/sms, and a booking made with the code."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from azure.storage.blob.aio import BlobServiceClient

from shared import resources
from shared.api.principal import encode_principal
from tests.conftest import EmulatorEndpoints
from tests.e2e.test_eligibility import ADMIN, import_people, new_number, person, years_ago

pytestmark = pytest.mark.e2e

LONDON = ZoneInfo("Europe/London")
TOMORROW = (dt.datetime.now(LONDON) + dt.timedelta(days=1)).date()
USED: list[str] = []  # every NHS number this module used, for the log check at the end


def a_number() -> str:
    number = new_number()
    USED.append(number)
    return number


def a_mobile() -> str:
    return f"07700 900{uuid.uuid4().int % 700 + 200:03d}"


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def texts(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/dev/sms", headers={"Accept": "application/json"}, timeout=10)
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


async def upload(storage: str, blob_name: str, data: bytes) -> None:
    async with BlobServiceClient.from_connection_string(storage) as service:
        await service.get_container_client(resources.BLOB_GP_UPLOADS).upload_blob(blob_name, data, overwrite=True)


async def report(storage: str, blob_name: str) -> str:
    async with BlobServiceClient.from_connection_string(storage) as service:
        downloaded = await service.get_container_client(resources.BLOB_GP_REPORTS).download_blob(blob_name)
        return (await downloaded.readall()).decode()


def new_practice(url: str) -> tuple[str, dict[str, str]]:
    """A GP practice with a clinic tomorrow (8 places), and a member of its staff."""
    ods = f"Y{uuid.uuid4().int % 10**7:07d}"
    registered = httpx.post(f"{url}/api/admin/sites", headers=ADMIN, timeout=30, json={
        "name": f"Practice {ods}", "type": "gpPractice", "odsCode": ods, "postcode": "LS2 7UE",
        "products": ["PFIZER"], "ageBands": [{"minAge": 16}]})
    assert registered.status_code == 201, registered.text
    opened = httpx.post(f"{url}/api/admin/sites/{ods}/sessions", headers=ADMIN, timeout=60, json={
        "date": TOMORROW.isoformat(), "start": "09:00", "end": "10:00", "slotMinutes": 15, "capacityPerSlot": 2,
        "product": "PFIZER"})
    assert opened.status_code == 201, opened.text
    user = str(uuid.uuid4())
    assert httpx.put(f"{url}/api/admin/staff/{user}", headers=ADMIN, json={"sites": [ods]},
                     timeout=10).status_code == 200
    return ods, {"x-ms-client-principal": encode_principal("Dr Practice", ["GpPractice"], user_id=user)}


def uploads_of(url: str, ods: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/gp/{ods}/uploads", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["uploads"]
    return found


async def test_a_list_is_checked_reported_invited_and_booked_by_its_code(
        devhost_url: str, emulators: EmulatorEndpoints) -> None:
    url, storage = devhost_url, emulators.storage_connection_string
    ods, gp = new_practice(url)
    born = years_ago(66)
    people = [a_number() for _ in range(3)]
    mobiles = [a_mobile() for _ in people]
    no_mobile, unknown = a_number(), a_number()
    import_people(url, *(person(n, born, mobile=m) for n, m in zip(people, mobiles, strict=True)),
                  {**person(no_mobile, born), "mobile": None})
    lines = ["\ufeffNHS Number,Date of Birth,Family Name,Given Name,Postcode,Mobile"]
    lines += [f"{n[:3]} {n[3:6]} {n[6:]},{born},Endtoend,Eve,LS1 4AP," for n in people]
    lines += [f"{no_mobile},{dt.date.fromisoformat(born):%d/%m/%Y},Endtoend,Eve,LS1 4AP,",
              f"{unknown},{born},Endtoend,Eve,LS1 4AP,", f"{people[0]},{born},Endtoend,Eve,LS1 4AP,"]
    data = ("\r\n".join(lines) + "\r\n").encode()
    await upload(storage, f"{ods}/list.csv", data)
    (done,) = eventually(lambda: [u for u in uploads_of(url, ods, gp) if u["status"] == "done"], "the check")
    assert done["fileName"] == "list" and done["rows"] == 6 and done["invited"] == 0
    assert done["outcomes"] == {"INVITABLE": 3, "ELIGIBLE_NO_MOBILE": 1, "NOT_IN_REGISTER": 1, "DUPLICATE_ROW": 1}
    checked = await report(storage, f"{ods}/list.report.csv")
    assert checked.splitlines()[0] == "row,nhsNumber,outcome,reasons,cohort,nextDose,invited"
    assert [line.split(",")[:3] for line in checked.splitlines()[1:]] == [
        ["1", people[0], "INVITABLE"], ["2", people[1], "INVITABLE"], ["3", people[2], "INVITABLE"],
        ["4", no_mobile, "ELIGIBLE_NO_MOBILE"], ["5", unknown, "NOT_IN_REGISTER"], ["6", people[0], "DUPLICATE_ROW"]]

    # Another practice's staff see nothing of it; this practice invites, and the texts arrive.
    _, other_gp = new_practice(url)
    assert httpx.get(f"{url}/api/gp/{ods}/uploads", headers=other_gp, timeout=10).status_code == 403
    assert httpx.post(f"{url}/api/gp/{ods}/invitations", headers=other_gp, json={"fileName": "list"},
                      timeout=10).status_code == 403
    invited = httpx.post(f"{url}/api/gp/{ods}/invitations", headers=gp, json={"fileName": "list"}, timeout=60)
    assert invited.status_code == 202, invited.text
    assert invited.json() == {"invited": 3, "skipped": {}, "capacity": 24}  # 8 places x 3
    eventually(lambda: len([t for t in texts(url) if f"Practice {ods}" in t["message"]]) == 3, "three texts")
    practice_texts = [t for t in texts(url) if f"Practice {ods}" in t["message"]]
    assert sorted(t["to"] for t in practice_texts) == sorted(f"+44{m[1:].replace(' ', '')}" for m in mobiles)
    codes = [t["message"].split("/invite/")[1].split()[0].rstrip(".") for t in practice_texts]
    assert all(number not in t["message"] for t in practice_texts for number in people)

    # The same file uploaded again, and a second run: nothing new, nobody texted twice.
    await upload(storage, f"{ods}/list.csv", data)
    # The re-upload's own event may be updating the upload record at that moment: the run then answers
    # 409 CONFLICT ("try again"), as a practice's screen would retry.
    deadline = time.monotonic() + 20
    while True:
        again = httpx.post(f"{url}/api/gp/{ods}/invitations", headers=gp, json={"fileName": "list"}, timeout=60)
        if again.status_code not in (409, 503) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (again.status_code, again.json().get("invited")) == (202, 0), again.text
    invited_report = await report(storage, f"{ods}/list.report.csv")
    assert invited_report.count(",yes") == 3

    # The code: what it is, the practice's slots, a booking without the waiting room.
    code = codes[0]
    view = httpx.get(f"{url}/api/invitations/{code}", timeout=10)
    assert view.status_code == 200 and view.json()["status"] == "open" and view.json()["odsCode"] == ods
    assert view.json()["practiceName"] == f"Practice {ods}" and view.json()["products"] == ["PFIZER"]
    slots = httpx.get(f"{url}/api/invitations/{code}/slots", timeout=10).json()["slots"]
    assert len(slots) == 4
    to = next(t["to"] for t in practice_texts if code in t["message"])
    booked = httpx.post(f"{url}/api/invitations/{code}/booking", headers={"Idempotency-Key": str(uuid.uuid4())},
                        json={"dateOfBirth": born, "appointments": [{"slotId": slots[0]["slotId"]}]}, timeout=30)
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "confirmed" and booked.json()["appointments"][0]["siteId"] == ods
    assert httpx.get(f"{url}/api/invitations/{code}", timeout=10).json()["status"] == "booked"
    # The confirmation goes out through the same outbox and queue as any booking's (the relay run now).
    assert httpx.post(f"{url}/admin/functions/relay_booking_events", json={"input": ""}, timeout=10).status_code == 202
    eventually(lambda: [t for t in texts(url) if t["to"] == to and booked.json()["reference"] in t["message"]],
               "the confirmation text")

    # Practice clinics never show nationally and cannot be booked there.
    search = httpx.get(f"{url}/api/sites", params={"postcode": "LS2", "radiusKm": 5}, timeout=10)
    assert search.status_code == 200, search.text
    assert ods not in [s["siteId"] for s in search.json()["sites"]]
    assert httpx.get(f"{url}/api/sites/{ods}/slots", timeout=10).status_code == 404
    national = httpx.post(f"{url}/api/bookings", json={
        "nhsNumber": people[1], "dateOfBirth": born, "appointments": [{"slotId": slots[1]["slotId"]}]}, timeout=10)
    assert national.status_code == 404

    # Codes that are not genuine, or point elsewhere, are refused with problems, never a 500.
    for bad in (code[:-3] + "AAA", code.replace(ods, "Y0000001"), "g1.nonsense", "x" * 101):
        answer = httpx.get(f"{url}/api/invitations/{bad}", timeout=10)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/problem+json")
    wrong_born = httpx.post(f"{url}/api/invitations/{codes[1]}/booking", timeout=10, json={
        "dateOfBirth": years_ago(30), "appointments": [{"slotId": slots[1]["slotId"]}]})
    assert (wrong_born.status_code, wrong_born.json()["code"]) == (403, "NOT_ELIGIBLE")


async def test_a_file_without_the_columns_gets_a_report_saying_so(
        devhost_url: str, emulators: EmulatorEndpoints) -> None:
    ods, gp = new_practice(devhost_url)
    await upload(emulators.storage_connection_string, f"{ods}/wrong.csv", b"Surname,Forename\r\nSmith,Alex\r\n")
    (rejected,) = eventually(lambda: [u for u in uploads_of(devhost_url, ods, gp) if u["status"] == "rejected"],
                             "the refusal")
    assert "MISSING_COLUMNS" in rejected["problem"]
    said = await report(emulators.storage_connection_string, f"{ods}/wrong.report.csv")
    assert "FILE_REJECTED" in said and "NHS Number" in said


def test_no_nhs_number_of_a_gp_list_reaches_the_log(devhost_url: str, devhost_log: Path) -> None:
    # Runs last in this module: the lists named NHS numbers with and without spaces.
    log = devhost_log.read_text(errors="replace")
    assert "gp upload" in log, "the GP list was never logged as checked, so this test would prove nothing"
    spaced = [f"{n[:3]} {n[3:6]} {n[6:]}" for n in USED]
    assert not [n for n in USED + spaced if n in log]

