"""Booking events through the change feed while bookings run flat out: do events keep up, and how late are they?

Bookings are sent to devhost as fast as `--clients` closed loops allow, each with a mobile number, with the
outbox repair timer switched off (every event must come through the change feed) and the SMS limits
raised. The feed handler's mark records when each booking's events were published (`eventsSentAt`,
beside the commit's `confirmedAt`, both on devhost's clock). After the bookings stop, the run waits (up to
`--drain` seconds) for every event and every text. Then:

- `events_per_s`: events published during the booking window, per second, beside `bookings_per_s` of the
  same run, and the backlog still unpublished when the bookings stopped;
- `event_lag_p50_ms`, `event_lag_p99_ms`: from the booking's commit to its events published;
- `booking_to_sms_p50_ms`, `booking_to_sms_p99_ms`: from the commit to the text's request at devhost's SMS
  endpoint (`/dev/sms`), over every booking (a text still missing counts as late as the drain's end), and
  `texts_per_s`: the texts one devhost sent per second while bookings and events ran beside them.
  Flat out in one process the texts fall behind (each is ~8 requests in a row), so that figure measures
  the backlog; a second phase books at a steady 25 a second, which the texts can follow, for
  `paced_booking_to_sms_p50_ms` and `paced_booking_to_sms_p99_ms`: the path's own latency.

Run: `.venv/bin/python -m bench.events [--seconds 15] [--clients 32]`. Prints a JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.emulated import emulated
from bench.load import run_load
from devhost.launch import start_devhost
from shared import resources
from shared.adapters.azure_provisioning import provision
from shared.adapters.clients import close_clients, get_clients
from shared.composition import Services
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.register import RegisterRecord
from shared.domain.sites import LONDON, Site
from shared.domain.slots import Slot, slot_id

# Ofcom's drama range: a thousand numbers, each texted many times in one run.
MOBILES = [f"07700 900{n:03d}" for n in range(1000)]
BORN = "1961-03-03"
PACED_PER_S, PACED_SECONDS = 25.0, 10.0
SITES, SLOTS_PER_SITE, CAPACITY = 20, 20, 40
RUN_SETTINGS = {
    "DEVHOST_LOG_LEVEL": os.environ.get("BENCH_DEVHOST_LOG_LEVEL", "WARNING"),
    "OUTBOX_RELAY_SCHEDULE": "0 0 0 1 1 *",  # the repair timer never runs: every event comes through the feed
    "SMS_SENDS_PER_MINUTE": "1000000", "SMS_LIMIT_PER_RECIPIENT": "1000000", "SMS_LIMIT_PER_PERSON": "1000000",
    "SMS_LIMIT_PER_BOOKING": "1000000", "EMAIL_FROM": "",
}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


_HANDLED = ("SELECT c.booking.reference AS reference, c.booking.confirmedAt AS committed, "
            "c.eventsSentAt AS handled FROM c WHERE c.type = 'booking' AND c.outboxPending = false")


async def handled() -> dict[str, tuple[float, float]]:
    """Each booking whose events were sent: (its commit, when the feed handler marked its events sent)."""
    container = get_clients().database().get_container_client(resources.BOOKINGS.name)
    found: dict[str, tuple[float, float]] = {}
    async for row in container.query_items(_HANDLED):
        if row.get("committed") and row.get("handled"):
            found[row["reference"]] = (dt.datetime.fromisoformat(row["committed"]).timestamp(),
                                       dt.datetime.fromisoformat(row["handled"]).timestamp())
    return found


async def texts(url: str, references: set[str]) -> dict[str, float]:
    """Each booking reference's first text at the SMS endpoint, and when it was received."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/dev/sms", headers={"Accept": "application/json"}) as answer:
        messages = (await answer.json())["messages"]
    received: dict[str, float] = {}
    for message in messages:
        for word in re.findall(r"[A-Za-z0-9]{4,}", message["message"]):
            if word in references:
                received.setdefault(word, dt.datetime.fromisoformat(message["receivedAt"]).timestamp())
    return received


async def paced(make: Callable[[int], tuple[str, str, dict[str, Any] | None, dict[str, str]]], rate: float,
                seconds: float) -> set[str]:
    """Bookings sent at a steady rate, each on its own (open loop); the references of those made."""
    made: set[str] = set()
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            _, target, body, _ = make(i)
            async with session.post(target, json=body) as answer:
                if answer.status == 201:
                    made.add((await answer.json())["reference"])

        sending: list[asyncio.Task[None]] = []
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            sending.append(asyncio.create_task(one(1_000_000 + len(sending))))
            await asyncio.sleep(max(0.0, start + len(sending) / rate - time.monotonic()))
        await asyncio.gather(*sending)
    return made


async def drive(url: str, slots: list[str], numbers: list[str], clients: int, seconds: float,
                drain: float) -> dict[str, Any]:
    rng = random.Random(5)
    unused = iter(numbers)

    def booking(i: int) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
        return "POST", f"{url}/api/bookings", {
            "nhsNumber": next(unused), "dateOfBirth": BORN, "contact": {"mobile": MOBILES[i % len(MOBILES)]},
            "appointments": [{"slotId": rng.choice(slots)}]}, {}

    started = time.time()
    load = await run_load(booking, clients, seconds)
    ended = time.time()
    booked = load.statuses.get(201, 0)
    # Let what was booked finish flowing: every booking's events handled and its text sent, or the drain ends.
    deadline = time.monotonic() + drain
    while True:
        done = await handled()
        received = await texts(url, set(done))
        if (len(done) >= booked and len(received) >= booked) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)

    lags = [(at - committed) * 1000 for committed, at in done.values()]
    to_sms = [(received[r] - done[r][0]) * 1000 for r in received]
    # Texts still missing when the drain ended count as late as the drain's end: the p99 never flatters.
    to_sms += [(time.time() - done[r][0]) * 1000 for r in done if r not in received]
    last_text = max(received.values(), default=started)
    committed_in_window = [at for committed, at in done.values() if committed <= ended]
    window = ended - started

    # Then a steady rate the texts can follow, for the latency of the path itself rather than of a backlog.
    steady = await paced(booking, PACED_PER_S, PACED_SECONDS)
    deadline = time.monotonic() + drain
    while True:
        after = await handled()
        sent = await texts(url, steady)
        if len(sent) >= len(steady) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    steady_sms = [(sent[r] - after[r][0]) * 1000 for r in sent if r in after]
    steady_sms += [(time.time() - after[r][0]) * 1000 for r in steady if r in after and r not in sent]
    return {
        "bookings": booked, "bookings_per_s": round(booked / load.seconds, 1),
        "events_per_s": round(sum(1 for _, at in done.values() if started <= at <= ended) / window, 1),
        "events_handled": len(done),
        "event_backlog_at_end": sum(1 for at in committed_in_window if at > ended) + booked - len(done),
        "event_lag_p50_ms": round(percentile(lags, 50), 1), "event_lag_p99_ms": round(percentile(lags, 99), 1),
        "event_lag_max_ms": round(max(lags, default=0.0), 1),
        "texts": len(received), "texts_missing": booked - len(received),
        "texts_per_s": round(len(received) / max(last_text - started, 1e-9), 1),
        "booking_to_sms_p50_ms": round(percentile(to_sms, 50), 1),
        "booking_to_sms_p99_ms": round(percentile(to_sms, 99), 1),
        "booking_p99_ms": round(load.percentile(99), 1), "statuses": dict(load.statuses),
        "paced_bookings_per_s": PACED_PER_S, "paced_bookings": len(steady),
        "paced_booking_to_sms_p50_ms": round(percentile(steady_sms, 50), 1),
        "paced_booking_to_sms_p99_ms": round(percentile(steady_sms, 99), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--drain", type=float, default=120.0, help="the longest wait for every event and text")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--people", type=int, default=8000)
    parser.add_argument("--log", type=Path, default=None, help="keep devhost's log here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, emulated(Path(tmp)) as emulators:
        slots, numbers = asyncio.run(_prepare(args.people))
        devhost = start_devhost({**emulators.environment, **RUN_SETTINGS}, Path(tmp) / "devhost.log")
        try:
            result = asyncio.run(_measure(devhost.url, slots, numbers, args.clients, args.seconds, args.drain))
        finally:
            devhost.stop()
            if args.log is not None:
                shutil.copyfile(Path(tmp) / "devhost.log", args.log)
    result = {"benchmark": "events", "clients": args.clients, "seconds": args.seconds, **result,
              "events_keep_up": result["events_per_s"] >= 0.9 * result["bookings_per_s"]}
    print(f"events: {result['events_per_s']}/s beside {result['bookings_per_s']} bookings/s; lag p99 "
          f"{result['event_lag_p99_ms']} ms; booking to SMS p99 {result['booking_to_sms_p99_ms']} ms")
    print(json.dumps(result))
    return result


async def build_world(people: int) -> tuple[list[str], list[str]]:
    """Sites, open slots and people, written through the app's own stores (wherever they keep slots)."""
    app = Services(get_clients())
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    slots: list[str] = []
    for s in range(SITES):
        site_id = f"EVENT{s:03d}"
        site = Site.model_validate({"siteId": site_id, "name": f"Event centre {s}", "type": "vaccinationCentre",
                                    "odsCode": "EVT01", "postcode": "LS1 4AP", "location": {"lat": 53.8, "lon": -1.5},
                                    "products": ["PFIZER"], "ageBands": [{"minAge": 16}]})
        await app.site_store.create_site(site, None, "bench-events", app.clock.now())
        made = []
        for n in range(SLOTS_PER_SITE):
            when = start + dt.timedelta(minutes=10 * n)
            made.append(Slot(slot_id=slot_id(site_id, when, "PFIZER"), site_id=site_id, session_id="bench",
                             product="PFIZER", start=when, end=when + dt.timedelta(minutes=10),
                             local_date=when.astimezone(LONDON).date(), capacity=CAPACITY))
        await app.site_store.create_slots(tuple(made))
        slots.extend(slot.slot_id for slot in made)
    numbers = [synthetic_nhs_number(i) for i in range(people)]
    for first in range(0, people, 1000):
        await app.register_import.import_records([RegisterRecord.model_validate(
            {"nhsNumber": n, "dateOfBirth": BORN, "givenName": "Event", "familyName": "Person", "postcode": "LS1 4AP"})
            for n in numbers[first:first + 1000]])
    return slots, numbers


async def _prepare(people: int) -> tuple[list[str], list[str]]:
    try:
        await provision(get_clients())
        return await build_world(people)
    finally:
        await close_clients()


async def _measure(url: str, slots: list[str], numbers: list[str], clients: int, seconds: float,
                   drain: float) -> dict[str, Any]:
    try:
        return await drive(url, slots, numbers, clients, seconds, drain=drain)
    finally:
        await close_clients()


if __name__ == "__main__":
    main()
