"""The NIMS exchange against the emulators: the export exactly once through Cosmos DB and Blob Storage across a
crash, a register file that cancels a booking for a dose given elsewhere and a slot counter mended, and what a file
costs in Cosmos requests with 1,000 and with 100,000 people on the register."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

import pytest
from azure.cosmos.aio import ContainerProxy
from azure.storage.blob.aio import ContainerClient
from fhir.resources.R4B.immunization import Immunization

from shared import resources
from shared.adapters.azure_provisioning import provision
from shared.adapters.blob_nims import BlobInboundFiles, BlobInboundReports
from shared.adapters.clients import Clients, get_clients
from shared.adapters.cosmos_nims import CosmosNimsLedger, CosmosRegisterPeople, CosmosSlotCounters
from shared.adapters.cosmos_patients import patient_id
from shared.api.nims_models import decode_line
from shared.composition import Services
from shared.domain.booking import BookingStatus
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.nims import NHS_NUMBER_SYSTEM, SNOMED_SYSTEM
from shared.domain.sites import LONDON
from shared.domain.staff import NATIONAL_ADMIN, SITE_STAFF, Principal
from shared.services.booking import BookAppointments
from shared.services.nims_inbound import InboundSettings, NimsInbound
from shared.services.nims_reconcile import RegisterReconciler, SlotRecount
from shared.services.site_operations import RecordBookedDose
from tests.conftest import EmulatorEndpoints
from tests.integration.booking_world import World
from tests.unit.services.fakes import FakeClock, SimulatedCrashError

pytestmark = pytest.mark.integration

BORN = dt.date(1960, 5, 5)
ADMIN = Principal("admin-int", "Nat Admin", frozenset({NATIONAL_ADMIN}))


@pytest.fixture
async def world(provisioned: EmulatorEndpoints) -> World:
    now = dt.datetime.now(LONDON).replace(hour=9, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    world = World(Services(get_clients(), FakeClock(now)))
    await world.site()
    return world


def clock(world: World) -> FakeClock:
    assert isinstance(world.app.clock, FakeClock)
    return world.app.clock


def blobs(world: World, name: str) -> ContainerClient:
    return world.app.clients.blobs().get_container_client(name)


async def outbound_resources(world: World, vaccination_id: str) -> list[dict[str, Any]]:
    """Every resource for this dose in nims-outbound, however many files hold it."""
    found = []
    container = blobs(world, resources.BLOB_NIMS_OUTBOUND)
    async for blob in container.list_blobs():
        text = (await (await container.download_blob(blob.name)).readall()).decode()
        found += [json.loads(line) for line in text.splitlines() if vaccination_id in line]
    return found


async def test_a_recorded_dose_is_one_valid_immunization_in_nims_outbound_across_a_crash_and_three_runs(
        world: World) -> None:
    staff = Principal(f"staff-{world.site_id}", "Sam Staff", frozenset({SITE_STAFF}))
    await world.app.staff_access.assign(staff.user_id, (world.site_id,), ADMIN)
    [number] = await world.people(1)
    start = clock(world).now() + dt.timedelta(hours=6)
    booked = await world.app.bookings.book(BookAppointments(number, BORN, (await world.slot(start, capacity=5),)))
    clock(world).current = start
    given = await world.app.site_operations.record_booked(RecordBookedDose(
        reference=booked.reference, product="ASTRAZENECA", batch_number="AZ77B1", administered_at=start), staff)
    exporter = world.app.nims_export

    def crash(step: str) -> None:
        if step == "written":
            raise SimulatedCrashError(step)

    exporter.step_hook = crash
    with pytest.raises(SimulatedCrashError):
        await exporter.export()
    exporter.step_hook = lambda step: None
    for _ in range(3):
        await exporter.export()
    [resource] = await outbound_resources(world, given.vaccination_id)
    clock(world).advance(minutes=11)  # past the lease of the batch the crash left open: it is written again
    assert (await exporter.export()).recovered >= 1
    assert await outbound_resources(world, given.vaccination_id) == [resource]
    parsed = Immunization.model_validate(resource)
    assert parsed.patient.identifier.value == number  # type: ignore[union-attr]
    assert parsed.location.identifier.value == "TST01"  # type: ignore[union-attr]
    assert parsed.lotNumber == "AZ77B1" and parsed.protocolApplied[0].doseNumberPositiveInt == 1  # type: ignore[index]
    assert parsed.vaccineCode.coding[0].code == "39114911000001105"  # type: ignore[index]
    record = await world.container(resources.VACCINATIONS.name).read_item(given.vaccination_id,
                                                                           partition_key=world.site_id)
    assert record["nims"] is not None
    ledger = world.container(resources.NIMS.name)
    batch = await ledger.read_item(f"out.{record['nims']}", partition_key="outbound")
    assert batch["state"] == "written" and number not in batch["blobName"]


def immunization_line(number: str, day: dt.date, dose: int = 1) -> str:
    return Immunization.model_validate({
        "resourceType": "Immunization", "status": "completed",
        "vaccineCode": {"coding": [{"system": SNOMED_SYSTEM, "code": "39115611000001103"}]},
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
        "occurrenceDateTime": day.isoformat(), "protocolApplied": [{"doseNumberPositiveInt": dose}],
    }).model_dump_json()


def register_line(number: str) -> str:
    return json.dumps({"nhsNumber": number, "dateOfBirth": BORN.isoformat(), "givenName": "Reg",
                       "familyName": "Ister", "postcode": "LS1 4AP"})


async def test_a_file_cancels_the_booking_for_a_dose_given_elsewhere_and_the_run_mends_a_drifted_counter(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    [number] = await world.people(1)
    slot = await world.slot(clock(world).now() + dt.timedelta(days=2), capacity=5)
    drifted = await world.slot(clock(world).now() + dt.timedelta(days=3), capacity=5)
    booked = await world.app.bookings.book(BookAppointments(number, BORN, (slot,), mobile="07700 900412"))
    sites = world.container(resources.SLOTS.name)
    await sites.patch_item(drifted, partition_key=world.site_id,
                           patch_operations=[{"op": "set", "path": "/booked", "value": 4}])  # corrupted
    name = f"it-{uuid.uuid4().hex[:8]}.ndjson"
    yesterday = clock(world).now().astimezone(LONDON).date() - dt.timedelta(days=1)
    await blobs(world, resources.BLOB_NIMS_INBOUND).upload_blob(
        name, (immunization_line(number, yesterday) + "\n").encode())
    with caplog.at_level(logging.INFO):
        run = await world.app.nims_inbound.run(decode_line)
        again = await world.app.nims_inbound.run(decode_line)
    assert run.cancelled_as_given >= 1 and again.files == 0
    assert run.slots.mended >= 1 and "drifted" in caplog.text and number not in caplog.text
    for ident in (slot, drifted):
        doc = await world.slot_doc(ident)
        assert doc["booked"] == len(doc["holds"]) == 0
    record = await world.booking(booked.reference)
    assert record is not None and record.status == BookingStatus.CANCELLED
    # The event owed, unless devhost's outbox relay (when the e2e tests run too) has sent it already.
    owed = [e.type for e in record.outbox if e.type != "BookingConfirmed"]
    assert owed in (["BookingDoseGivenElsewhere"], [])
    report = blobs(world, resources.BLOB_NIMS_INBOUND_REPORTS).get_blob_client(f"{name}.report.json")
    assert json.loads(await (await report.download_blob()).readall()) == {"lines": 1, "applied": 1, "rejected": []}
    view = await world.app.patient_store.booking_view(number)
    assert view.claims == {} and [v.dose for v in view.lookup.record.vaccinations] == [1]  # type: ignore[union-attr]


# ---- what a file costs, by the register's size --------------------------------------------------------------------


async def load_register(patients: ContainerProxy, first: int, count: int) -> None:
    """`count` register documents, 1,000 a request through the emulator's own loose batch (devhost's
    "x-devhost-bulk-load" header: no limit of 100 operations, nor of one partition key, as Cosmos DB has).
    Only this loader relies on that; the app never does."""
    for start in range(first, first + count, 1000):
        ops: list[tuple[str, tuple[dict[str, Any]]]] = []
        for i in range(start, min(start + 1000, first + count)):
            number = f"8{i:09d}"  # never in a file; need not be a valid NHS number
            ops.append(("create", ({"id": patient_id(number), "nhsNumber": number, "bookings": {}, "recorded": {},
                                    "register": {"dateOfBirth": "1970-01-01", "givenName": "R", "familyName": "P",
                                                 "postcode": "LS1 4AP", "flags": [], "vaccinations": []}},)))
        await patients.execute_item_batch(ops, partition_key=str(ops[0][1][0]["nhsNumber"]),
                                          headers={"x-devhost-bulk-load": "true"})


async def test_a_files_cosmos_requests_grow_with_its_lines_and_not_with_the_register(
        provisioned: EmulatorEndpoints) -> None:
    """1,000 people on the register, then 100,000: the same file costs the same requests; twice the lines, about
    twice the requests. A database and blob containers of its own, so nothing else's documents or files count."""
    suffix = uuid.uuid4().hex[:8]
    clients = Clients(get_clients().settings.model_copy(update={"cosmos_database": f"nims-scale-{suffix}"}))
    try:
        await provision(clients)
        app = Services(clients)
        world = World(app)
        await world.site()
        service_blobs = clients.blobs()
        inbound = service_blobs.get_container_client(f"nims-in-{suffix}")
        reports = service_blobs.get_container_client(f"nims-reports-{suffix}")
        await inbound.create_container()
        await reports.create_container()
        container = clients.database().get_container_client
        service = NimsInbound(
            BlobInboundFiles(inbound), BlobInboundReports(reports), CosmosNimsLedger(container(resources.NIMS.name)),
            app.register_import, CosmosRegisterPeople(container(resources.PATIENTS.name)), app.patient_store,
            RegisterReconciler(app.booking_records, app.bookings, app.policy, app.clock),
            SlotRecount(CosmosSlotCounters(container(resources.SLOTS.name)), app.clock), app.clock,
            b"integration-key", InboundSettings(lines_per_batch=100))
        patients = container(resources.PATIENTS.name)
        await load_register(patients, 0, 1_000)
        slots = [await world.slot(dt.datetime.now(dt.UTC) + dt.timedelta(days=2, minutes=10 * i), capacity=50)
                 for i in range(4)]

        async def file_of(lines: int, seed: int) -> bytes:
            """A tenth of the lines a dose given elsewhere to someone booked, the rest register records."""
            booked = await world.people(lines // 10)
            for i, number in enumerate(booked):
                await app.bookings.book(BookAppointments(number, BORN, (slots[i % len(slots)],)))
            yesterday = dt.datetime.now(LONDON).date() - dt.timedelta(days=1)
            text = [immunization_line(n, yesterday) for n in booked]
            text += [register_line(synthetic_nhs_number(seed + i)) for i in range(lines - len(booked))]
            return ("\n".join(text) + "\n").encode()

        async def requests_for(data: bytes) -> tuple[int, dict[str, int]]:
            await inbound.upload_blob(f"f-{uuid.uuid4().hex[:8]}.ndjson", data)
            await app.policy.current()  # warm, as a running worker is
            clients.cosmos_requests.reset()
            run = await service.run(decode_line)
            assert run.rejected == 0 and run.cancelled_as_given == data.count(b"Immunization")
            return clients.cosmos_requests.total, dict(clients.cosmos_requests.by_kind)

        small, small_kinds = await requests_for(await file_of(100, 600_000))
        await load_register(patients, 1_000, 99_000)
        large, large_kinds = await requests_for(await file_of(100, 610_000))
        double, _ = await requests_for(await file_of(200, 620_000))
        # Measured: 160 with 1,000 people, 159 with 100,000 (a metadata read fewer), 312 for 200 lines: of the 160,
        # 90 creates, 10 doses, 50 for the 10 cancellations, the rest the batch read, ledger and slot recount.
        assert abs(large - small) <= 2, (small_kinds, large_kinds)
        assert double >= small + 100  # every extra line costs at least one request
        assert double <= 2.2 * small
    finally:
        await clients.cosmos().delete_database(clients.settings.cosmos_database)
        await clients.close()
