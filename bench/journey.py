"""The whole citizen journey under load (locust against devhost), stepped up until it breaks.

Starts the emulators and devhost, seeds sites, sessions and people through the admin routes, runs
`bench/journey_locust.py` headless, then reports each step's throughput, latency and errors, and checks
the invariants: no slot over capacity, every slot's counter equal to its holds.

Run: `.venv/bin/python -m bench.journey`. Prints a JSON line at the end.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from bench.emulated import emulated
from devhost.launch import ROOT, start_devhost
from shared import resources
from shared.adapters.clients import close_clients, get_clients
from shared.api.principal import encode_principal
from shared.domain.nhs_number import synthetic_nhs_number

ADMIN = {"x-ms-client-principal": encode_principal("bench", ["NationalAdmin"])}
POSTCODES = ["LS1 4AP", "M1 1AE", "B1 1AA", "NE1 7RU", "BS1 4DJ", "NG1 5FW", "SW1A 1AA", "E1 6AN"]
SITES_PER_CITY = 4
PEOPLE = 10_000
BORN = "1958-08-08"


async def seed(url: str) -> list[dict[str, str]]:
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        tomorrow = dt.date.today() + dt.timedelta(days=1)
        for city, postcode in enumerate(POSTCODES):
            for n in range(SITES_PER_CITY):
                async with http.post(f"{url}/api/admin/sites", json={
                        "name": f"Journey centre {city}-{n}", "type": "vaccinationCentre", "odsCode": f"JRN{city}{n}",
                        "postcode": postcode, "products": ["PFIZER", "MODERNA"], "ageBands": [{"minAge": 16}]}) as r:
                    assert r.status == 201, await r.text()
                    site_id = (await r.json())["siteId"]
                for day in range(2):
                    async with http.post(f"{url}/api/admin/sites/{site_id}/sessions", json={
                            "date": (tomorrow + dt.timedelta(days=day)).isoformat(), "start": "09:00",
                            "end": "17:00", "slotMinutes": 10, "capacityPerSlot": 6, "product": "PFIZER"}) as r:
                        assert r.status == 201, await r.text()
        people = [{"nhsNumber": synthetic_nhs_number(i), "dateOfBirth": BORN} for i in range(PEOPLE)]
        for first in range(0, PEOPLE, 1000):
            batch = [{**p, "givenName": "Load", "familyName": "Tester", "postcode": "LS1 4AP"}
                     for p in people[first:first + 1000]]
            async with http.post(f"{url}/api/admin/nims/patients", json={"patients": batch}) as r:
                assert r.status == 200 and (await r.json())["imported"] == len(batch)
    return people


async def invariants() -> dict[str, int]:
    try:
        container = get_clients().database().get_container_client(resources.SLOTS.name)
        slots = [doc async for doc in container.query_items(
            "SELECT c.booked, c.capacity, c.holds FROM c WHERE c.type = 'slot'")]
        return {"slots_checked": len(slots),
                "overbooked_slots": sum(s["booked"] > s["capacity"] for s in slots),
                "counter_mismatches": sum(s["booked"] != len(s["holds"]) for s in slots),
                "places_booked": sum(s["booked"] for s in slots)}
    finally:
        await close_clients()


def steps_from(history: Path) -> list[dict[str, Any]]:
    """Per user count: mean requests/s and failures/s, and the latency percentiles at the step's end."""
    rows = [r for r in csv.DictReader(history.open()) if r["Name"] == "Aggregated" and r["User Count"] != "0"]
    by_users: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_users[int(row["User Count"])].append(row)
    steps = []
    for users, group in sorted(by_users.items()):
        settled = group[len(group) // 3:] or group  # skip the ramp into the step
        last = group[-1]
        steps.append({
            "users": users,
            "requests_per_s": round(sum(float(r["Requests/s"]) for r in settled) / len(settled), 1),
            "failures_per_s": round(sum(float(r["Failures/s"]) for r in settled) / len(settled), 2),
            "p50_ms": float(last["50%"] or 0), "p95_ms": float(last["95%"] or 0), "p99_ms": float(last["99%"] or 0),
        })
    return steps


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, emulated(Path(tmp)) as emulators:
        work = Path(tmp)
        devhost = start_devhost({**emulators.environment, "DEVHOST_LOG_LEVEL": "WARNING",
                                 "ELIGIBILITY_CLIENT_BURST": "1000000"}, work / "devhost.log")
        try:
            people = asyncio.run(seed(devhost.url))
            (work / "people.json").write_text(json.dumps(people))
            env = {**os.environ, "JOURNEY_PEOPLE": str(work / "people.json"),
                   "JOURNEY_POSTCODES": json.dumps(POSTCODES)}
            subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "journey_locust.py"),
                            "--headless", "--host", devhost.url, "--csv", str(work / "journey"),
                            "--csv-full-history", "--only-summary", "--loglevel", "WARNING"],
                           env=env, cwd=ROOT, check=False, timeout=300)
            steps = steps_from(work / "journey_stats_history.csv")
            per_route = {r["Name"]: {"requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                                     "p50_ms": float(r["50%"] or 0), "p99_ms": float(r["99%"] or 0)}
                         for r in csv.DictReader((work / "journey_stats.csv").open()) if r["Name"] != "Aggregated"}
        finally:
            devhost.stop()
        checked = asyncio.run(invariants())
    best = max(steps, key=lambda s: s["requests_per_s"]) if steps else {}
    for step in steps:
        print(f"users {step['users']:>3}: {step['requests_per_s']:7.1f} req/s, {step['failures_per_s']:.2f} fail/s, "
              f"p50 {step['p50_ms']:.0f} ms, p95 {step['p95_ms']:.0f} ms, p99 {step['p99_ms']:.0f} ms")
    for name, route in sorted(per_route.items()):
        print(f"  {name:18} {route}")
    print(f"invariants: {checked}")
    result = {"benchmark": "journey", "steps": steps, "peak_requests_per_s": best.get("requests_per_s"),
              "peak_users": best.get("users"),
              "bookings": per_route.get("bookings", {}).get("requests", 0), **checked}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
