"""Bookings per second through devhost against the emulator's own raw rate of conditional patches.

Both are measured in one run against the same Cosmos emulator, so their ratio holds across machines.
Afterwards every slot is checked: booked equals its holds and never exceeds capacity. Then, in this
process, single-dose bookings one after another: the Cosmos requests each costs (counted at the SDK's
transport) and the app's CPU each costs (process time around BookingService.book: the service, the
domain and the azure-cosmos pipeline; not devhost's HTTP handling, not the emulator).

Run: `.venv/bin/python -m bench.booking [--seconds 30] [--clients 32] [--profile]`. Prints a JSON line at
the end; `--profile` also prints the cProfile of the in-process bookings (BENCHMARKS.md, "Booking").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import pstats
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.cosmos import PartitionKey
from azure.cosmos.exceptions import CosmosAccessConditionFailedError

from bench.emulated import emulated
from bench.load import run_load
from devhost.launch import EmulatorSet, start_devhost
from functions.admin_register import decode_records
from shared import resources
from shared.adapters.azure_provisioning import provision
from shared.adapters.clients import close_clients, get_clients
from shared.composition import Services
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.sites import Site
from shared.domain.slots import slot_id
from shared.services.booking import BookAppointments

SITES = 20
SLOTS_PER_SITE = 20
CAPACITY = 40
BORN = "1961-03-03"
IN_PROCESS = 301  # people kept out of the load for the in-process bookings (one warms the caches)
# What runs after a booking commits (its events off the change feed, their texts) is bench/events.py's to
# measure, with bookings running flat out; here devhost serves the booking path alone unless --with-events.
AFTER_COMMIT = ("booking_events_from_feed", "relay_booking_events", "notify_booking_event")


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
    slot_documents = app.clients.database().get_container_client(resources.SLOTS.name)
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
            await slot_documents.upsert_item({"id": ident, "siteId": site_id, "type": "slot", "sessionId": "bench",
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


async def in_process(slots: list[str], numbers: list[str], profile: bool) -> tuple[float, float]:
    """Cosmos requests and app CPU milliseconds one single-dose booking costs, in this process."""
    app = Services(get_clients())
    born = dt.date.fromisoformat(BORN)
    await app.bookings.book(BookAppointments(numbers[0], born, (slots[0],)))  # warm caches
    samples = len(numbers) - 1
    counter = app.clients.cosmos_requests
    counter.reset()
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    for i in range(1, samples + 1):
        await app.bookings.book(BookAppointments(numbers[i], born, (slots[i % len(slots)],)))
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    cpu_ms = (time.process_time() - cpu) * 1000 / samples
    print(f"in process: {counter.total / samples:.2f} requests {dict(counter.by_kind)}, {cpu_ms:.2f} ms CPU "
          f"per booking ({samples} bookings{', profiled' if profile else ''})")
    return counter.total / samples, cpu_ms


async def check_slots(slots: list[str]) -> dict[str, int]:
    container = get_clients().database().get_container_client(resources.SLOTS.name)
    overbooked = mismatched = booked = 0
    for ident in slots:
        doc = await container.read_item(ident, partition_key=ident.split(".")[0])
        booked += doc["booked"]
        overbooked += doc["booked"] > doc["capacity"]
        mismatched += doc["booked"] != len(doc["holds"])
    return {"overbooked_slots": overbooked, "counter_mismatches": mismatched, "places_booked": booked}


def process_cpu_seconds(pid: int) -> float | None:
    """A process's CPU time (user + system) so far, from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per(before: float | None, after: float | None, count: int) -> float | None:
    """Milliseconds of CPU per item between two readings, when both were taken."""
    return round((after - before) * 1000 / max(count, 1), 2) if before is not None and after is not None else None


def cosmos_pid(emulators: EmulatorSet) -> int:
    """The Cosmos emulator's process (its CPU per booking is a figure of the run)."""
    return next(p.pid for p in emulators.running.processes if "cosmos_server.js" in str(p.args))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="print the cProfile of the in-process bookings")
    parser.add_argument("--with-events", action="store_true",
                        help="keep the functions that handle booking events running in devhost meanwhile")
    args = parser.parse_args(argv)
    people = 24_000  # a fast run books ~400/s for 30 s; load.py ends the run early should they run out
    with tempfile.TemporaryDirectory() as tmp, emulated(Path(tmp)) as emulators:
        slots, numbers = asyncio.run(_prepare(people))
        cosmos = cosmos_pid(emulators)
        disabled = {} if args.with_events else {f"AzureWebJobs.{name}.Disabled": "true" for name in AFTER_COMMIT}
        devhost = start_devhost({**emulators.environment, "DEVHOST_LOG_LEVEL": "WARNING", **disabled},
                                Path(tmp) / "devhost.log")
        try:
            rng = random.Random(3)
            # The last site's slots are kept for the in-process bookings, so none is full by then.
            load_slots = slots[:-SLOTS_PER_SITE]
            unused = iter(numbers[IN_PROCESS:])

            def booking(i: int) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
                return "POST", f"{devhost.url}/api/bookings", {
                    "nhsNumber": next(unused), "dateOfBirth": BORN,
                    "appointments": [{"slotId": rng.choice(load_slots)}]}, {}

            host_cpu, cosmos_cpu = process_cpu_seconds(devhost.process.pid), process_cpu_seconds(cosmos)
            load = asyncio.run(run_load(booking, args.clients, args.seconds))
            host_after, cosmos_after = process_cpu_seconds(devhost.process.pid), process_cpu_seconds(cosmos)
        finally:
            devhost.stop()
        raw, checked, (per_booking, cpu_ms), raw_cosmos = asyncio.run(
            _after(slots, numbers[:IN_PROCESS], args.profile, cosmos))
    booked = load.statuses.get(201, 0)
    bookings_per_s = booked / load.seconds
    # devhost's whole process over the load (HTTP, the app, its timers) per booking made.
    host_ms = _per(host_cpu, host_after, booked)
    cosmos_ms = _per(cosmos_cpu, cosmos_after, booked)
    print(f"bookings via devhost: {bookings_per_s:.1f}/s ({booked} in {load.seconds:.1f} s, "
          f"{args.clients} clients) statuses={dict(load.statuses)} {load.summary()}")
    print(f"raw conditional patches: {raw:.1f}/s; ratio {bookings_per_s / raw:.3f}; CPU per booking: devhost "
          f"{host_ms} ms, emulator {cosmos_ms} ms (per raw patch {raw_cosmos and round(raw_cosmos * 1000, 3)} ms)")
    print(f"cosmos requests per single-dose booking: {per_booking:.2f}; app CPU {cpu_ms:.2f} ms; slots: {checked}")
    result = {
        "benchmark": "booking", "bookings_per_s": round(bookings_per_s, 1),
        "raw_conditional_patch_per_s": round(raw, 1), "booking_ratio": round(bookings_per_s / raw, 3),
        "booking_p50_ms": round(load.percentile(50), 1), "booking_p99_ms": round(load.percentile(99), 1),
        "cosmos_requests_per_booking": round(per_booking, 2), "booking_cpu_ms": round(cpu_ms, 2),
        "devhost_cpu_ms_per_booking": host_ms, "emulator_cpu_ms_per_booking": cosmos_ms,
        "emulator_cpu_ms_per_raw_patch": round(raw_cosmos * 1000, 3) if raw_cosmos is not None else None,
        "clients": args.clients, "with_events": args.with_events,
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


async def _after(slots: list[str], numbers: list[str], profile: bool,
                 cosmos: int) -> tuple[float, dict[str, int], tuple[float, float], float | None]:
    """The slots checked, the raw patch rate (and the emulator's CPU seconds per raw patch), the in-process run."""
    try:
        checked = await check_slots(slots)
        before = process_cpu_seconds(cosmos)
        seconds = 8.0
        raw = await raw_conditional_patches(seconds, 32)
        after = process_cpu_seconds(cosmos)
        per_patch = (after - before) / (raw * seconds) if before is not None and after is not None else None
        measured = await in_process(slots[-SLOTS_PER_SITE:], numbers, profile)
        print(f"emulator CPU per in-process booking: {_per(after, process_cpu_seconds(cosmos), len(numbers))} ms")
        return raw, checked, measured, per_patch
    finally:
        await close_clients()


if __name__ == "__main__":
    main()
