"""The NIMS exchange through devhost, its timers run now by the host's admin API: a vaccination recorded over
HTTP leaves as one FHIR Immunization; a register file with a dose given elsewhere cancels the booking for it,
gives its place back and texts the person once; nothing personal in blob names or the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from fhir.resources.R4B.immunization import Immunization

from shared import resources
from shared.composition import services
from shared.domain.nims import NHS_NUMBER_SYSTEM, ODS_SYSTEM, SNOMED_SYSTEM
from shared.domain.sites import LONDON
from tests.conftest import EmulatorEndpoints
from tests.e2e.test_bookings import person
from tests.e2e.test_eligibility import years_ago
from tests.e2e.test_site_operations import a_mobile, post, soon_today, staff, texts_about
from tests.integration.booking_world import World

pytestmark = pytest.mark.e2e
NUMBERS: list[str] = []
EXPORT, INBOUND = "export_nims_vaccinations", "apply_nims_inbound"


@pytest.fixture
async def world(provisioned: EmulatorEndpoints) -> World:
    world = World(services())
    await world.site()
    return world


def run_now(url: str, function: str) -> None:
    answer = httpx.post(f"{url}/admin/functions/{function}", json={"input": ""}, timeout=10)
    assert answer.status_code == 202, answer.text


async def eventually(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{what} did not happen"
        await asyncio.sleep(0.3)


async def outbound_for(vaccination_id: str) -> list[tuple[str, dict[str, Any]]]:
    container = services().clients.blobs().get_container_client(resources.BLOB_NIMS_OUTBOUND)
    found = []
    async for blob in container.list_blobs():
        text = (await (await container.download_blob(blob.name)).readall()).decode()
        found += [(blob.name, json.loads(line)) for line in text.splitlines() if vaccination_id in line]
    return found


def test_both_timers_are_listed_by_the_admin_api(devhost_url: str) -> None:
    listed = {f["name"]: f for f in httpx.get(f"{devhost_url}/admin/functions", timeout=10).json()}
    for name in (EXPORT, INBOUND):
        assert listed[name]["config"]["bindings"][0]["type"] == "timerTrigger"


async def test_a_recorded_vaccination_leaves_as_one_fhir_immunization(devhost_url: str, world: World) -> None:
    slot = await world.slot(soon_today(), capacity=5)
    born = years_ago(67, days=uuid.uuid4().int % 300)
    number = person(devhost_url, born)
    NUMBERS.append(number)
    booked = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "contact": {"mobile": a_mobile()},
        "appointments": [{"slotId": slot}]})
    assert booked.status_code == 201, booked.text
    given_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    recorded = post(devhost_url, "admin/vaccinations", {"reference": booked.json()["reference"], "product": "MODERNA",
                                                        "batchNumber": "MD0193", "administeredAt": given_at},
                    staff(devhost_url, world))
    assert recorded.status_code == 201, recorded.text
    vaccination_id = recorded.json()["vaccinationId"]
    for _ in range(3):  # three runs, one resource
        run_now(devhost_url, EXPORT)

    async def exported() -> list[tuple[str, dict[str, Any]]]:
        return await outbound_for(vaccination_id)

    await eventually(exported, "the export")
    await asyncio.sleep(1)
    [(name, resource)] = await outbound_for(vaccination_id)
    parsed = Immunization.model_validate(resource)
    assert parsed.status == "completed" and parsed.lotNumber == "MD0193"
    assert (parsed.patient.identifier.system, parsed.patient.identifier.value) == (  # type: ignore[union-attr]
        NHS_NUMBER_SYSTEM, number)
    assert (parsed.location.identifier.system, parsed.location.identifier.value) == (  # type: ignore[union-attr]
        ODS_SYSTEM, "TST01")
    assert parsed.performer[0].actor.identifier.value == "TST01"  # type: ignore[index,union-attr]
    assert parsed.protocolApplied[0].doseNumberPositiveInt == 1  # type: ignore[index]
    assert parsed.vaccineCode.coding[0].system == SNOMED_SYSTEM  # type: ignore[index]
    assert parsed.vaccineCode.coding[0].code == "39326911000001101"  # type: ignore[index]
    assert resource["occurrenceDateTime"] == given_at
    today = dt.datetime.now(dt.UTC).date()
    assert name.startswith(f"{today:%Y/%m/%d}/") and name.endswith(".ndjson") and number not in name


async def test_a_dose_given_elsewhere_cancels_the_booking_gives_the_place_back_and_texts_once(
        devhost_url: str, world: World) -> None:
    slot = await world.slot((dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(second=0, microsecond=0),
                            capacity=5)
    born = years_ago(58, days=uuid.uuid4().int % 300)
    number = person(devhost_url, born)
    NUMBERS.append(number)
    booked = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "contact": {"mobile": a_mobile()},
        "appointments": [{"slotId": slot}]})
    assert booked.status_code == 201, booked.text
    reference = booked.json()["reference"]
    assert (await world.slot_doc(slot))["booked"] == 1
    drifted = await world.slot((dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(second=0, microsecond=0),
                               capacity=5)
    await world.container(resources.SLOTS.name).patch_item(  # a counter gone wrong, for the repair to find
        drifted, partition_key=world.site_id, patch_operations=[{"op": "set", "path": "/booked", "value": 3}])
    yesterday = dt.datetime.now(LONDON).date() - dt.timedelta(days=1)
    line = Immunization.model_validate({  # as NIMS would send it: written by fhir.resources
        "resourceType": "Immunization", "status": "completed",
        "vaccineCode": {"coding": [{"system": SNOMED_SYSTEM, "code": "39115611000001103"}]},
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
        "occurrenceDateTime": yesterday.isoformat(), "lotNumber": "FH8271",
        "protocolApplied": [{"doseNumberPositiveInt": 1}]}).model_dump_json()
    name = f"e2e/{uuid.uuid4().hex[:8]}.ndjson"
    blobs = services().clients.blobs()
    await blobs.get_container_client(resources.BLOB_NIMS_INBOUND).upload_blob(name, (line + "\n").encode())
    for _ in range(2):  # applied once, however often the timer runs
        run_now(devhost_url, INBOUND)
    report_blob = blobs.get_container_client(resources.BLOB_NIMS_INBOUND_REPORTS).get_blob_client(
        f"{name}.report.json")

    async def report() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = json.loads(await (await report_blob.download_blob()).readall())
        except ResourceNotFoundError:
            return None
        return found

    assert await eventually(report, "the report") == {"lines": 1, "applied": 1, "rejected": []}

    async def cancelled() -> bool:
        lookup = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=10, json={
            "reference": reference, "nhsNumber": number, "dateOfBirth": born})
        return bool(lookup.json()["status"] == "cancelled")

    await eventually(cancelled, "the cancellation")
    slot_doc = await world.slot_doc(slot)
    assert slot_doc["booked"] == len(slot_doc["holds"]) == 0  # the place is back
    assert (await world.slot_doc(drifted))["booked"] == 0  # the counter mended against its holds

    async def texted() -> list[str]:
        return [t for t in texts_about(devhost_url, reference) if t.startswith("Our records show you have had")]

    await eventually(texted, "the text")
    run_now(devhost_url, INBOUND)
    await asyncio.sleep(6)  # another relay round: a second text, had one been owed, would be here by now
    [text] = await texted()
    assert "this appointment is cancelled" in text and reference in text
    eligibility = httpx.post(f"{devhost_url}/api/eligibility", json={"nhsNumber": number, "dateOfBirth": born},
                             headers={"x-forwarded-for": f"203.0.113.{uuid.uuid4().int % 250 + 1}"}, timeout=10)
    assert eligibility.json()["nextDose"] == 2


def test_no_nhs_number_reaches_the_log_or_a_blob_name(devhost_url: str, devhost_log: Path) -> None:
    log = devhost_log.read_text(errors="replace")
    assert EXPORT in log and INBOUND in log, "the log shows none of this module's runs"
    assert "drifted" in log and "mended" in log  # the repair says what it did, in counts
    assert not [n for n in NUMBERS if n in log]
