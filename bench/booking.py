"""Bookings per second through devhost against the emulator's own raw rate of conditional patches.

Both are measured in one run against the same Cosmos emulator, so their ratio holds across machines.
Afterwards every slot is checked: booked equals its holds and never exceeds capacity.

Run: `.venv/bin/python -m bench.booking [--seconds 30] [--clients 32]`. Prints a JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.cosmos import PartitionKey
from azure.cosmos.exceptions import CosmosAccessConditionFailedError

from bench.load import run_load
from devhost.launch import start_devhost, start_emulators
from functions.admin_register import decode_records
from shared import resources
from shared.adapters.azure_provisioning import provision
from shared.adapters.clients import close_clients, get_clients
from shared.composition import Services
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.sites import Site
from shared.domain.slots import slot_id
from shared.services.booking import BookAppointments
from shared.settings import reset_settings

SITES = 20
SLOTS_PER_SITE = 20
CAPACITY = 40
BORN = "1961-03-03"


async def raw_conditional_patches(seconds: float, concurrency: int) -> float:
    """The emulator's own rate for the primitive a booking rests on: incr where booked < capacity."""
    database = get_clients().database()
    container = await database.create_container_if_not_exists(id="bench-raw", partition_key=PartitionKey("/pk"))
    docs = [f"raw-{i}" for i in range(concurrency)]
    for doc in docs:
        await container.upsert_item({"id": doc, "pk": doc, "booked": 0, "capacity": 10**9})
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(doc: str) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            try:
                await container.patch_item(doc, partition_key=doc,
                                           patch_operations=[{"op": "incr", "path": "/booked", "value": 1}],
                                           filter_predicate="FROM c WHERE c.booked < c.capacity")
            except CosmosAccessConditionFailedError:
                pass
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(doc) for doc in docs))
    return done / (time.perf_counter() - started)


async def build_world(people: int) -> tuple[list[str], list[str]]:
    """Sites and open slots written straight to the emulator, and people imported through the service."""
    app = Services(get_clients())
    sites = app.clients.database().get_container_client(resources.SITES.name)
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    slots: list[str] = []
    for s in range(SITES):
        site_id = f"BENCH{s:03d}"
        site = Site.model_validate({"siteId": site_id, "name": f"Bench centre {s}", "type": "vaccinationCentre",
                                    "odsCode": "BEN01", "postcode": "LS1 4AP", "location": {"lat": 53.8, "lon": -1.5},
                                    "products": ["PFIZER"], "ageBands": [{"minAge": 16}]})
        await sites.upsert_item({"id": site_id, "siteId": site_id, "type": "site",
                                 "site": site.model_dump(mode="json", by_alias=True)})
        for n in range(SLOTS_PER_SITE):
            when = start + dt.timedelta(minutes=10 * n)
            ident = slot_id(site_id, when, "PFIZER")
            await sites.upsert_item({"id": ident, "siteId": site_id, "type": "slot", "sessionId": "bench",
                                     "product": "PFIZER", "start": when.isoformat(),
                                     "end": (when + dt.timedelta(minutes=10)).isoformat(),
                                     "localDate": when.date().isoformat(), "capacity": CAPACITY, "booked": 0,
                                     "holds": {}, "status": "open"})
            slots.append(ident)
    numbers = [synthetic_nhs_number(i) for i in range(people)]
    for first in range(0, people, 1000):
        await app.register_import.import_records(decode_records([
            {"nhsNumber": n, "dateOfBirth": BORN, "givenName": "Bench", "familyName": "Person", "postcode": "LS1 4AP"}
            for n in numbers[first:first + 1000]]))
    return slots, numbers


async def requests_per_booking(slots: list[str], numbers: list[str], samples: int = 40) -> float:
    """Cosmos requests one single-dose booking costs, counted at the SDK transport in this process."""
    app = Services(get_clients())
    born = dt.date.fromisoformat(BORN)
    await app.bookings.book(BookAppointments(numbers[0], born, (slots[0],)))  # warm caches
    counter = app.clients.cosmos_requests
    counter.reset()
    for i in range(1, samples + 1):
        await app.bookings.book(BookAppointments(numbers[i], born, (slots[i % len(slots)],)))
    return counter.total / samples


async def check_slots(slots: list[str]) -> dict[str, int]:
    container = get_clients().database().get_container_client(resources.SITES.name)
    overbooked = mismatched = booked = 0
    for ident in slots:
        doc = await container.read_item(ident, partition_key=ident.split(".")[0])
        booked += doc["booked"]
        overbooked += doc["booked"] > doc["capacity"]
        mismatched += doc["booked"] != len(doc["holds"])
    return {"overbooked_slots": overbooked, "counter_mismatches": mismatched, "places_booked": booked}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args(argv)
    people = 12_000
    with tempfile.TemporaryDirectory() as tmp:
        emulators = start_emulators(Path(tmp))
        import os

        saved = dict(os.environ)
        os.environ.update(emulators.environment)
        reset_settings()
        try:
            slots, numbers = asyncio.run(_prepare(people))
            devhost = start_devhost({**emulators.environment, "DEVHOST_LOG_LEVEL": "WARNING"},
                                    Path(tmp) / "devhost.log")
            try:
                rng = random.Random(3)
                unused = iter(numbers[100:])

                def booking(i: int) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
                    return "POST", f"{devhost.url}/api/bookings", {
                        "nhsNumber": next(unused), "dateOfBirth": BORN,
                        "appointments": [{"slotId": rng.choice(slots)}]}, {}

                load = asyncio.run(run_load(booking, args.clients, args.seconds))
            finally:
                devhost.stop()
            raw, checked, per_booking = asyncio.run(_after(slots, numbers))
        finally:
            emulators.stop()
            os.environ.clear()
            os.environ.update(saved)
            reset_settings()
    booked = load.statuses.get(201, 0)
    bookings_per_s = booked / load.seconds
    print(f"bookings via devhost: {bookings_per_s:.1f}/s ({booked} in {load.seconds:.1f} s, "
          f"{args.clients} clients) statuses={dict(load.statuses)} {load.summary()}")
    print(f"raw conditional patches: {raw:.1f}/s; ratio {bookings_per_s / raw:.3f}")
    print(f"cosmos requests per single-dose booking: {per_booking:.2f}; slots: {checked}")
    result = {
        "benchmark": "booking", "bookings_per_s": round(bookings_per_s, 1),
        "raw_conditional_patch_per_s": round(raw, 1), "booking_ratio": round(bookings_per_s / raw, 3),
        "booking_p50_ms": round(load.percentile(50), 1), "booking_p99_ms": round(load.percentile(99), 1),
        "cosmos_requests_per_booking": round(per_booking, 2), "clients": args.clients,
        "errors": sum(n for status, n in load.statuses.items() if status >= 500), **checked,
    }
    print(json.dumps(result))
    return result


async def _prepare(people: int) -> tuple[list[str], list[str]]:
    try:
        await provision(get_clients())
        return await build_world(people)
    finally:
        await close_clients()


async def _after(slots: list[str], numbers: list[str]) -> tuple[float, dict[str, int], float]:
    try:
        checked = await check_slots(slots)
        raw = await raw_conditional_patches(8.0, 32)
        per_booking = await requests_per_booking(slots, numbers[:100])
        return raw, checked, per_booking
    finally:
        await close_clients()


if __name__ == "__main__":
    main()
