"""The NIMS exchange through the service layer against the emulators: register files in, vaccinations out.

1. The register holds `lines / 2` people (put straight into the emulator through its batch endpoint, 1,000 documents
   a request: the app's own import takes about 500 a second here), and a few hundred of them have a booking.
2. Inbound: a file of `--lines` lines, one in two about a known person (of those: a fifth a dose given elsewhere,
   a fifth the register record unchanged, the rest a changed record) and one in two a new person. The doses given to
   booked people cancel their bookings (reconciliation). Timed through `NimsInbound.run`, the timer's use case, with
   every Cosmos request counted at the SDK transport: **inbound lines applied per second** and **Cosmos requests
   per line**; the process's resident memory sampled every 50 ms while a file of a fifth of the length and then the
   whole file are applied: **constant memory** means the same peak for both.
   The same file is then applied again under another name (a full extract in which nothing changed): **unchanged
   lines per second**, which cost a read of each batch's people and no writes.
3. The yardstick, in the same run: single-document patches, 64 in flight, for 3 s (**raw writes per second**); a
   line costs about one write, so lines/s over raw writes/s is the share of the store's rate the path achieves.
4. Outbound: `--records` vaccination records written straight into the emulator, then exported by
   `NimsExporter.export` (batches of 1,000): **resources written per second** and Cosmos requests per resource; every
   record is checked to be in nims-outbound exactly once.

Run: `.venv/bin/python -m bench.nims [--lines 12000] [--records 6000]`. Prints a JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulated import emulated
from bench.gp_upload import RssSampler
from shared import resources
from shared.adapters.azure_provisioning import provision
from shared.adapters.clients import close_clients, get_clients
from shared.adapters.cosmos_patients import patient_id
from shared.adapters.cosmos_vaccinations import vaccination_document
from shared.api.nims_models import decode_line
from shared.composition import Services
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.nims import NHS_NUMBER_SYSTEM, SNOMED_SYSTEM
from shared.domain.register import RegisterRecord
from shared.domain.sites import LONDON, Site
from shared.domain.slots import Slot, slot_id
from shared.domain.vaccination import VaccinationRecord
from shared.services.booking import BookAppointments

SITE = "NIMSBENCH"
BORN = dt.date(1960, 5, 5)
BOOKED = 200


def record(number: str, postcode: str = "LS1 4AP") -> RegisterRecord:
    return RegisterRecord(nhs_number=number, date_of_birth=BORN, given_name="Bench", family_name="Person",
                          postcode=postcode)


async def batches(container: Any, docs: list[dict[str, Any]], key: str) -> None:
    """Documents 1,000 a request through the emulator's loose batch (devhost's "x-devhost-bulk-load" header: any
    size, any partition key, not atomic, unlike Cosmos DB): a loader's shortcut only."""
    for first in range(0, len(docs), 1000):
        part = docs[first:first + 1000]
        await container.execute_item_batch([("create", (doc,)) for doc in part], partition_key=str(part[0][key]),
                                           headers={"x-devhost-bulk-load": "true"})


async def load_register(app: Services, numbers: list[str]) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    await batches(app.clients.database().get_container_client(resources.PATIENTS.name), [
        {"id": patient_id(n), "nhsNumber": n, "registerUpdatedAt": now, "bookings": {}, "idempotency": {},
         "references": {}, "recorded": {},
         "register": record(n).model_dump(mode="json", by_alias=True, exclude={"nhs_number"})} for n in numbers],
        "nhsNumber")


async def book_some(app: Services, numbers: list[str]) -> None:
    site = Site.model_validate({"siteId": SITE, "name": "Bench Centre", "type": "vaccinationCentre",
                                "odsCode": "BEN01", "postcode": "LS1 4AP", "location": {"lat": 53.8, "lon": -1.55},
                                "products": ["PFIZER"], "ageBands": [{"minAge": 12}]})
    await app.site_store.create_site(site, None, "bench", dt.datetime.now(dt.UTC))
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    slots = [Slot(slot_id=slot_id(SITE, start + dt.timedelta(minutes=10 * i), "PFIZER"), site_id=SITE, session_id="s",
                  product="PFIZER", start=start + dt.timedelta(minutes=10 * i),
                  end=start + dt.timedelta(minutes=10 * i + 10),
                  local_date=(start + dt.timedelta(minutes=10 * i)).astimezone(LONDON).date(), capacity=50)
             for i in range(len(numbers) // 40 + 1)]
    await app.site_store.create_slots(tuple(slots))
    gate = asyncio.Semaphore(16)

    async def one(i: int, number: str) -> None:
        async with gate:
            await app.bookings.book(BookAppointments(number, BORN, (slots[i // 40].slot_id,)))

    await asyncio.gather(*(one(i, n) for i, n in enumerate(numbers)))


def immunization(number: str, day: dt.date) -> str:
    return json.dumps({"resourceType": "Immunization", "status": "completed",
                       "vaccineCode": {"coding": [{"system": SNOMED_SYSTEM, "code": "39115611000001103"}]},
                       "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
                       "occurrenceDateTime": day.isoformat(), "protocolApplied": [{"doseNumberPositiveInt": 1}]})


def register_line(number: str, postcode: str) -> str:
    return json.dumps(record(number, postcode).model_dump(mode="json", by_alias=True, exclude={"vaccinations"}))


def inbound_file(known: list[str], new: list[str], booked: set[str]) -> tuple[bytes, int]:
    """Alternating known and new people; known ones by fifths: a dose elsewhere, unchanged, changed (3 fifths)."""
    yesterday = dt.datetime.now(LONDON).date() - dt.timedelta(days=1)
    lines, cancelling = [], 0
    for i, (old, fresh) in enumerate(zip(known, new, strict=True)):
        kind = i % 5
        if kind == 0:
            lines.append(immunization(old, yesterday))
            cancelling += old in booked
        else:
            lines.append(register_line(old, "LS1 4AP" if kind == 1 else "LS2 7EY"))
        lines.append(register_line(fresh, "LS6 1AN"))
    return ("\n".join(lines) + "\n").encode(), cancelling


async def apply_file(app: Services, name: str, data: bytes) -> dict[str, Any]:
    await app.clients.blobs().get_container_client(resources.BLOB_NIMS_INBOUND).upload_blob(name, data, overwrite=True)
    await app.policy.current()  # warm, as a running worker is
    app.clients.cosmos_requests.reset()
    with RssSampler() as memory:
        before = memory.now()
        started = time.perf_counter()
        run = await app.nims_inbound.run(decode_line)
        seconds = time.perf_counter() - started
    return {"lines": run.lines, "applied": run.applied, "rejected": run.rejected, "seconds": seconds,
            "cancelled": run.cancelled_as_given, "requests": app.clients.cosmos_requests.total,
            "rss_growth_mb": round((memory.peak - before) / 1e6, 1)}


async def raw_writes_per_s(app: Services, numbers: list[str], seconds: float = 3.0) -> float:
    container = app.clients.database().get_container_client(resources.PATIENTS.name)
    done, stop = 0, time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop:
            number = numbers[i % len(numbers)]
            await container.patch_item(patient_id(number), partition_key=number,
                                       patch_operations=[{"op": "set", "path": "/benchmark", "value": i}])
            done += 1
            i += 64

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(64)))
    return done / (time.perf_counter() - started)


async def export(app: Services, count: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    records = [vaccination_document(VaccinationRecord(
        vaccination_id=f"vac-bench{i:027d}", site_id=SITE, ods_code="BEN01", product="PFIZER", dose=1,
        batch_number="BN0001", administered_at=now, reference="BCDFGHJKM", nhs_number=synthetic_nhs_number(i),
        recorded_by="bench", recorded_at=now)) for i in range(count)]
    await batches(app.clients.database().get_container_client(resources.VACCINATIONS.name), records, "siteId")
    app.clients.cosmos_requests.reset()
    started = time.perf_counter()
    outcome = await app.nims_export.export()
    seconds = time.perf_counter() - started
    requests = app.clients.cosmos_requests.total
    outbound = app.clients.blobs().get_container_client(resources.BLOB_NIMS_OUTBOUND)
    sent: list[str] = []
    async for blob in outbound.list_blobs():
        text = (await (await outbound.download_blob(blob.name)).readall()).decode()
        sent += [json.loads(line)["id"] for line in text.splitlines()]
    assert sorted(sent) == sorted(r["id"] for r in records), "a record was not sent exactly once"
    return {"resources": outcome.resources, "batches": outcome.batches, "seconds": seconds, "requests": requests}


async def _run(lines: int, count: int) -> dict[str, Any]:
    try:
        app = Services(get_clients())
        await provision(app.clients)
        half = lines // 2
        started = time.perf_counter()
        known = [synthetic_nhs_number(i) for i in range(half)]
        new = [synthetic_nhs_number(half + i) for i in range(half)]
        await load_register(app, known)
        fifth = half // 5
        booked = known[fifth::5][:BOOKED]  # people the large file gives a dose elsewhere
        await book_some(app, booked)
        setup = time.perf_counter() - started
        # A first small file warms what a running worker has warm (imports, models, connections), so that the
        # memory measured is the files'.
        await apply_file(app, "bench-warm.ndjson", inbound_file(known[:100], new[:100], set())[0])
        small_data, _ = inbound_file(known[100:fifth], new[100:fifth], set())
        small = await apply_file(app, "bench-small.ndjson", small_data)
        data, cancelling = inbound_file(known[fifth:], new[fifth:], set(booked))
        large = await apply_file(app, "bench-large.ndjson", data)
        assert large["rejected"] == 0 and large["cancelled"] == cancelling, large
        again = await apply_file(app, "bench-again.ndjson", data)  # the same lines again: a full extract re-sent
        assert again["applied"] == large["lines"] and again["cancelled"] == 0, again
        raw = await raw_writes_per_s(app, known)
        out = await export(app, count)
        per_s = large["lines"] / large["seconds"]
        return {
            "benchmark": "nims", "lines": large["lines"], "setup_s": round(setup, 1),
            "inbound_lines_per_s": round(per_s), "inbound_seconds": round(large["seconds"], 1),
            "cosmos_requests_per_line": round(large["requests"] / large["lines"], 3),
            "bookings_cancelled": large["cancelled"],
            "unchanged_lines_per_s": round(again["lines"] / again["seconds"]),
            "cosmos_requests_per_unchanged_line": round(again["requests"] / again["lines"], 4),
            "raw_writes_per_s": round(raw), "inbound_to_raw_write_ratio": round(per_s / raw, 3),
            "rss_growth_mb_small_file": small["rss_growth_mb"], "small_file_lines": small["lines"],
            "rss_growth_mb_large_file": large["rss_growth_mb"],
            "outbound_resources": out["resources"], "outbound_batches": out["batches"],
            "outbound_resources_per_s": round(out["resources"] / out["seconds"]),
            "cosmos_requests_per_resource": round(out["requests"] / out["resources"], 3),
        }
    finally:
        await close_clients()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=12_000)
    parser.add_argument("--records", type=int, default=6_000)
    args = parser.parse_args(argv)
    # The whole file in one run, and no NIMS timer schedule needed: the use cases are called directly.
    with tempfile.TemporaryDirectory() as tmp, emulated(Path(tmp), NIMS_RUN_SECONDS="3600",
                                                        NIMS_EXPORT_BATCH_SIZE="1000"):
        result = asyncio.run(_run(args.lines, args.records))
    print(f"nims: {result['inbound_lines_per_s']} inbound lines/s ({result['cosmos_requests_per_line']} Cosmos "
          f"requests a line, {result['inbound_to_raw_write_ratio']} of the raw write rate; "
          f"{result['unchanged_lines_per_s']} lines/s when nothing changes); memory growth "
          f"{result['rss_growth_mb_small_file']} MB for {result['small_file_lines']} lines, "
          f"{result['rss_growth_mb_large_file']} MB for {result['lines']}; {result['outbound_resources_per_s']} "
          f"resources/s out ({result['cosmos_requests_per_resource']} requests each)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
