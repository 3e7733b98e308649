"""The NIMS exchange on the in-memory fakes: the export exactly once across crashes, inbound files applied once a
line at a time, reconciliation of the bookings a file affects (and nobody else's), the slot recount. The same
against the emulators: tests/integration/test_nims_cosmos.py; over HTTP: tests/e2e/test_nims.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import tracemalloc
from typing import Any

import pytest
from fhir.resources.R4B.immunization import Immunization

from shared.api.nims_models import decode_line
from shared.domain.booking import BookingStatus
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.nims import NHS_NUMBER_SYSTEM, SNOMED_SYSTEM
from shared.domain.register import RegisterRecord
from shared.domain.staff import SITE_STAFF, Principal
from shared.ports.nims import InboundBlob
from shared.services.booking import BookAppointments
from shared.services.nims_inbound import InboundNotAppliedError
from shared.services.site_operations import RecordBookedDose
from tests.unit.services.fakes import BOOKING_BORN, NimsWorld, PersonDocument, SimulatedCrashError

TODAY_3PM = dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.UTC)  # the fake clock starts at 09:00 that day
STAFF = Principal("staff-1", "Sam Staff", frozenset({SITE_STAFF}))
PFIZER = "39115611000001103"


@pytest.fixture
def world() -> NimsWorld:
    world = NimsWorld()
    world.site("SITE-A")
    world.staff.assigned["staff-1"] = frozenset({"SITE-A"})
    return world


async def booked(world: NimsWorld, *starts: dt.datetime, mobile: str = "+447700900001") -> tuple[str, str]:
    number = world.person(BOOKING_BORN)
    slots = [world.slot(start, capacity=3) for start in starts]
    record = await world.service.book(BookAppointments(number, BOOKING_BORN, tuple(slots), mobile=mobile))
    return number, record.reference


async def vaccinated(world: NimsWorld) -> tuple[str, str]:
    """A person booked for 15:00 today and given the dose then: (NHS number, vaccination id)."""
    world.clock.current = TODAY_3PM - dt.timedelta(hours=6)
    number, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM
    done = await world.operations.record_booked(RecordBookedDose(
        reference=reference, product="PFIZER", batch_number="EK4176", administered_at=TODAY_3PM), STAFF)
    return number, done.vaccination_id


def crash_at(step: str) -> Any:
    def hook(name: str) -> None:
        if name == step:
            raise SimulatedCrashError(name)
    return hook


# ---- outbound -----------------------------------------------------------------------------------------------------


async def test_a_dose_becomes_one_valid_immunization_even_when_the_run_crashes_between_the_write_and_the_ledger(
        world: NimsWorld) -> None:
    number, vaccination_id = await vaccinated(world)
    world.exporter.step_hook = crash_at("written")
    with pytest.raises(SimulatedCrashError):
        await world.exporter.export()
    world.exporter.step_hook = lambda step: None
    for _ in range(3):  # the run that opened the batch may still be writing it: left alone until its lease ends
        assert (await world.exporter.export()).resources == 0
    [resource] = world.outbound.resources()
    world.clock.advance(minutes=11)
    recovered = await world.exporter.export()
    assert (recovered.recovered, recovered.resources) == (1, 1)
    assert world.outbound.resources() == [resource]  # written again: the same file, the same one resource
    assert list(world.outbound.writes.values()) == [2]
    assert (await world.exporter.export()).recovered == 0  # the ledger says written now
    parsed = Immunization.model_validate(resource)
    assert parsed.id == vaccination_id and parsed.lotNumber == "EK4176"
    assert parsed.patient.identifier.value == number  # type: ignore[union-attr]
    assert parsed.patient.identifier.system == NHS_NUMBER_SYSTEM  # type: ignore[union-attr]
    assert parsed.location.identifier.value == "TST01"  # type: ignore[union-attr]
    assert parsed.protocolApplied[0].doseNumberPositiveInt == 1  # type: ignore[index]
    assert parsed.vaccineCode.coding[0].code == PFIZER  # type: ignore[index]
    [name] = world.outbound.blobs
    assert name.startswith("2026/03/01/") and name.endswith(".ndjson") and number not in name


@pytest.mark.parametrize("step", ["opened", "claimed", "written", "closed"])
async def test_a_crash_after_any_step_still_sends_every_dose_exactly_once(world: NimsWorld, step: str) -> None:
    ids = [(await vaccinated(world))[1] for _ in range(3)]
    world.clock.current = TODAY_3PM
    world.exporter.step_hook = crash_at(step)
    with pytest.raises(SimulatedCrashError):
        await world.exporter.export()
    world.exporter.step_hook = lambda s: None
    world.clock.advance(minutes=11)
    for _ in range(2):
        await world.exporter.export()
    sent = [r["id"] for r in world.outbound.resources()]
    assert sorted(sent) == sorted(ids)
    assert all(b.state == "written" for b in world.ledger.batches.values())


async def test_two_runs_at_once_write_each_dose_once(world: NimsWorld) -> None:
    ids = [(await vaccinated(world))[1] for _ in range(6)]
    await asyncio.gather(world.exporter.export(), world.exporter.export())
    assert sorted(r["id"] for r in world.outbound.resources()) == sorted(ids)


# ---- inbound ------------------------------------------------------------------------------------------------------


def immunization_line(number: str, day: dt.date | dt.datetime, dose: int = 1, code: str = PFIZER) -> str:
    return Immunization.model_validate({
        "resourceType": "Immunization", "status": "completed",
        "vaccineCode": {"coding": [{"system": SNOMED_SYSTEM, "code": code}]},
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
        "occurrenceDateTime": day.isoformat(), "protocolApplied": [{"doseNumberPositiveInt": dose}],
    }).model_dump_json()


def register_line(number: str, born: str = "1960-05-05", **extra: object) -> str:
    return json.dumps({"nhsNumber": number, "dateOfBirth": born, "givenName": "Ada", "familyName": "Lovelace",
                       "postcode": "LS1 4AP", **extra})


def ndjson(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


async def test_a_dose_given_elsewhere_cancels_the_booking_for_it_gives_the_place_back_and_owes_one_text(
        world: NimsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM + dt.timedelta(days=2))
    slot = world.holds.slot(world.records.record(reference).appointments[0].slot_id)  # type: ignore[union-attr]
    assert slot.booked == 1
    world.inbound_files.put("daily-0301.ndjson", ndjson(immunization_line(number, dt.date(2026, 2, 28))))
    for _ in range(2):  # the file is applied once; the second run finds it settled
        await world.inbound.run(decode_line)
    record = world.records.record(reference)
    assert record is not None and record.status == BookingStatus.CANCELLED
    assert (slot.booked, slot.holds) == (0, {})
    assert number in world.patients.people and not world.patients.people[number].claims
    assert world.reports.report("daily-0301.ndjson") == {"lines": 1, "applied": 1, "rejected": []}
    await world.relay.relay()
    await world.relay.relay()
    [event] = [e for e in world.publisher.events if e.reference == reference and e.type != "BookingConfirmed"]
    assert event.type == "BookingDoseGivenElsewhere" and event.contact.mobile == "+447700900001"
    assert [a.dose for a in event.appointments] == [1]
    doses = world.patients.merged(number).vaccinations  # type: ignore[union-attr]
    assert [(v.product, v.dose) for v in doses] == [("PFIZER", 1)] and str(doses[0].vaccination_id).startswith("nims-")
    world.inbound_files.put("again.ndjson", ndjson(immunization_line(number, dt.date(2026, 2, 28))))
    await world.inbound.run(decode_line)  # the same dose again, in another file: nothing changes
    assert len(world.patients.recorded[number]) == 1
    assert world.reports.report("again.ndjson")["applied"] == 1
    world.check_site_invariants()


async def test_a_pair_whose_later_dose_no_longer_fits_is_released_in_the_same_text(world: NimsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM + dt.timedelta(days=1), TODAY_3PM + dt.timedelta(days=60))
    moderna = immunization_line(number, dt.date(2026, 2, 27), code="39326911000001101")
    world.inbound_files.put("f.ndjson", ndjson(moderna))
    run = await world.inbound.run(decode_line)
    assert (run.cancelled_as_given, run.released) == (1, 1)
    record = world.records.record(reference)
    assert record is not None and record.status == BookingStatus.CANCELLED and not world.holds.held_by(reference)
    [event] = [e for _, e in ((reference, e) for e in record.outbox) if e.type == "BookingDoseGivenElsewhere"]
    assert [a.dose for a in event.appointments or []] == [1]
    assert [a.dose for a in event.previous_appointments] == [2]


async def test_a_later_dose_that_still_fits_stays_booked(world: NimsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM + dt.timedelta(days=1), TODAY_3PM + dt.timedelta(days=60))
    world.inbound_files.put("f.ndjson", ndjson(immunization_line(number, dt.date(2026, 2, 27))))
    await world.inbound.run(decode_line)
    record = world.records.record(reference)
    assert record is not None and record.status == BookingStatus.CONFIRMED
    assert [record.status_of(a) for a in record.appointments] == [BookingStatus.CANCELLED, BookingStatus.CONFIRMED]
    assert set(world.patients.people[number].claims) == {2}
    assert world.holds.held_by(reference) == {record.appointments[1].slot_id}
    world.check_site_invariants()


async def test_bad_lines_are_rejected_alone_with_their_line_numbers_and_the_rest_applied(world: NimsWorld) -> None:
    known = world.person(BOOKING_BORN)
    new = synthetic_nhs_number(9_000)
    future = (TODAY_3PM + dt.timedelta(days=3)).date()
    text = ndjson(
        register_line(new),                                     # 1 applied
        "{this is not json",                                    # 2
        immunization_line(known, dt.date(2026, 2, 1), code="11111111"),  # 3 unknown product
        register_line("9990000017"),                            # 4 bad check digit
        immunization_line(known, future),                       # 5 a dose in the future
        "",                                                     # (blank: skipped)
        immunization_line(known, dt.date(2026, 2, 1)),          # 7 applied
        register_line(synthetic_nhs_number(9_001), born="2030-01-01"),  # 8 born in the future
        immunization_line(synthetic_nhs_number(9_002), dt.date(2026, 2, 1)),  # 9 nobody on the register
    )
    world.inbound_files.put("mixed.ndjson", text)
    run = await world.inbound.run(decode_line)
    report = world.reports.report("mixed.ndjson")
    assert (report["lines"], report["applied"]) == (8, 2) and (run.lines, run.applied, run.rejected) == (8, 2, 6)
    by_line = {r["line"]: r["errors"] for r in report["rejected"]}
    assert sorted(by_line) == [2, 3, 4, 5, 8, 9]
    assert by_line[2] == [{"field": None, "message": "not JSON"}]
    assert by_line[3][0]["field"] == "vaccineCode"
    assert by_line[4][0]["field"] == "nhsNumber" and "9990000017" not in json.dumps(report)
    assert by_line[5] == [{"field": "occurrenceDateTime", "message": "must not be in the future"}]
    assert by_line[8] == [{"field": "dateOfBirth", "message": "must not be in the future"}]
    assert by_line[9] == [{"field": "patient.identifier", "message": "no such person on the register"}]
    assert world.patients.merged(new) is not None
    assert [v.dose for v in world.patients.merged(known).vaccinations] == [1]  # type: ignore[union-attr]


async def test_a_crash_part_way_through_a_file_resumes_where_it_stopped_and_reports_the_whole_file(
        world: NimsWorld) -> None:
    numbers = [synthetic_nhs_number(20_000 + i) for i in range(130)]
    lines = [register_line(n) if i % 10 else "not json" for i, n in enumerate(numbers)]
    world.inbound_files.put("big.ndjson", ndjson(*lines))
    world.inbound.step_hook = crash_at("batch")  # after the first batch of 50 is applied and checkpointed
    with pytest.raises(InboundNotAppliedError):  # the run goes on to other files, then says one failed
        await world.inbound.run(decode_line)
    assert world.ledger.files["big.ndjson"].line == 50
    world.inbound.step_hook = lambda s: None
    run = await world.inbound.run(decode_line)
    assert (run.files, run.lines) == (1, 130)  # the file finished this run, with its totals
    report = world.reports.report("big.ndjson")
    assert (report["lines"], report["applied"]) == (130, 117)
    assert [r["line"] for r in report["rejected"]] == list(range(1, 131, 10))
    assert all(world.patients.merged(n) is not None for i, n in enumerate(numbers) if i % 10)


async def test_a_file_replaced_by_a_new_version_is_applied_again_and_an_unchanged_one_never(
        world: NimsWorld) -> None:
    number = synthetic_nhs_number(30_000)
    world.inbound_files.put("f.ndjson", ndjson(register_line(number)))
    await world.inbound.run(decode_line)
    world.patients.requests.reset()
    await world.inbound.run(decode_line)
    assert world.patients.requests.total == 0  # settled: not read again
    world.inbound_files.put("f.ndjson", ndjson(register_line(number, flags=["atRisk"])),
                            at=dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC))
    await world.inbound.run(decode_line)
    assert world.patients.merged(number).flags == ("atRisk",)  # type: ignore[union-attr]


async def test_reading_a_file_holds_one_chunk_and_one_batch_whatever_its_length(world: NimsWorld) -> None:
    line = register_line(synthetic_nhs_number(1)).encode() + b"\n"

    async def peak_for(lines: int) -> tuple[int, int]:
        world.inbound_files.put("x", line * lines)
        blob = InboundBlob("x", world.inbound_files.blobs["x"][1], lines * len(line), TODAY_3PM)
        tracemalloc.start()
        seen = 0
        async for batch, _, last in world.inbound._batches(blob, 0, 0):
            seen = last
            assert len(batch) <= 50
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, seen

    small, large = await peak_for(2_000), await peak_for(40_000)
    assert small[1] == 2_000 and large[1] == 40_000
    assert large[0] < small[0] * 2 + 64 * 1024, (small, large)  # 20 times the file, not 20 times the memory
    assert world.inbound_files.largest_chunk <= world.inbound_files.chunk_bytes


async def test_a_line_too_long_to_hold_is_rejected_alone(world: NimsWorld) -> None:
    number = synthetic_nhs_number(40_000)
    world.inbound_files.put("long.ndjson", ndjson(register_line(number), "x" * 200_000, register_line(number)))
    await world.inbound.run(decode_line)
    report = world.reports.report("long.ndjson")
    assert report["applied"] == 2 and [r["line"] for r in report["rejected"]] == [2]


# ---- reconciliation touches only the people a file changed ----------------------------------------------------


async def requests_for_a_file(register_size: int, lines: int) -> int:
    world = NimsWorld()
    world.site("SITE-A")
    template = RegisterRecord(nhs_number="9990000018", date_of_birth=BOOKING_BORN, given_name="A", family_name="B",
                              postcode="LS1 4AP")
    for i in range(register_size):  # the register: documents nobody in the file touches (keys need not be valid)
        world.patients.people[f"8{i:09d}"] = PersonDocument(template)
    booked_people = []
    for i in range(lines // 10):  # one in ten of the file's people holds a booking
        number, _ = await booked(world, TODAY_3PM + dt.timedelta(days=2 + i % 5))
        booked_people.append(number)
    changed = [synthetic_nhs_number(100 + i) for i in range(lines - len(booked_people))]
    text = ndjson(*(immunization_line(n, dt.date(2026, 2, 20)) for n in booked_people),
                  *(register_line(n) for n in changed))
    world.inbound_files.put("f.ndjson", text)
    world.reset_requests()
    run = await world.inbound.run(decode_line)
    assert run.applied == lines and run.cancelled_as_given == len(booked_people)
    return world.store_requests()


async def test_reconciliation_requests_grow_with_the_lines_not_with_the_register() -> None:
    small_register = await requests_for_a_file(1_000, 100)
    large_register = await requests_for_a_file(100_000, 100)
    twice_the_lines = await requests_for_a_file(1_000, 200)
    assert small_register == large_register
    assert 1.8 * small_register <= twice_the_lines <= 2.2 * small_register


# ---- the slot recount -----------------------------------------------------------------------------------------------


async def test_a_drifted_slot_counter_is_mended_and_the_log_says_how_many(world: NimsWorld,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    number, reference = await booked(world, TODAY_3PM + dt.timedelta(days=1))
    far = world.slot(TODAY_3PM + dt.timedelta(days=40))
    ident = world.records.record(reference).appointments[0].slot_id  # type: ignore[union-attr]
    world.holds.slot(ident).booked = 3  # a counter gone wrong
    world.holds.slot(far).booked = 2  # outside the days recounted
    with caplog.at_level(logging.INFO):
        run = await world.inbound.run(decode_line)
    assert (run.slots.drifted, run.slots.mended) == (1, 1)
    assert world.holds.slot(ident).booked == 1 and world.holds.slot(far).booked == 2
    assert "1 drifted, 1 mended" in caplog.text and number not in caplog.text
    assert (await world.inbound.run(decode_line)).slots.drifted == 0


async def test_the_same_records_sent_again_are_applied_by_writing_nothing(world: NimsWorld) -> None:
    known = world.person(BOOKING_BORN)
    lines = [register_line(synthetic_nhs_number(50_000 + i)) for i in range(30)]
    lines.append(immunization_line(known, dt.date(2026, 2, 1)))
    world.inbound_files.put("monday.ndjson", ndjson(*lines))
    await world.inbound.run(decode_line)
    world.reset_requests()
    world.inbound_files.put("tuesday.ndjson", ndjson(*lines))  # a full extract: nothing in it is new
    await world.inbound.run(decode_line)
    assert world.reports.report("tuesday.ndjson") == {"lines": 31, "applied": 31, "rejected": []}
    assert world.patients.requests.by_kind == {"read_many": 1}  # one read of the batch's people, no writes
