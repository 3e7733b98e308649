"""Eligibility: pure decisions per second, and checks per second through devhost against /api/health.

Run: `.venv/bin/python -m bench.eligibility` (or `make bench`). Prints a JSON line at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import run_load
from devhost.demo_data import population
from devhost.launch import start_devhost, start_emulators
from shared.api.principal import encode_principal
from shared.domain.eligibility import PatientFacts, decide_eligibility
from shared.domain.policy import DEFAULT_POLICY

PEOPLE = 5_000
CLIENTS = 16
SECONDS = 8.0


def pure_decisions_per_second(people: list[dict[str, Any]], seconds: float = 2.0) -> float:
    facts = [PatientFacts.model_validate({k: p[k] for k in ("dateOfBirth", "flags", "vaccinations")}) for p in people]
    today = dt.date.today()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for fact in facts[:1000]:
            decide_eligibility(fact, DEFAULT_POLICY, today)
        count += 1000
    return count / (time.perf_counter() - started)


async def import_people(url: str, people: list[dict[str, Any]]) -> None:
    admin = {"x-ms-client-principal": encode_principal("bench", ["NationalAdmin"])}
    async with aiohttp.ClientSession() as session:
        for start in range(0, len(people), 1000):
            async with session.post(f"{url}/api/admin/nims/patients", json={"patients": people[start:start + 1000]},
                                    headers=admin) as answer:
                assert answer.status == 200, await answer.text()


def measure(url: str, people: list[dict[str, Any]]) -> dict[str, Any]:
    rng = random.Random(7)

    def eligibility(i: int) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
        who = people[rng.randrange(len(people))]
        return "POST", f"{url}/api/eligibility", {"nhsNumber": who["nhsNumber"], "dateOfBirth": who["dateOfBirth"]}, \
            {"x-forwarded-for": f"10.0.{i % 200}.{i % 250}"}

    def health(i: int) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
        return "GET", f"{url}/api/health", None, {}

    asyncio.run(import_people(url, people))
    asyncio.run(run_load(eligibility, CLIENTS, 1.0))  # warm caches and connections
    checks = asyncio.run(run_load(eligibility, CLIENTS, SECONDS))
    healths = asyncio.run(run_load(health, CLIENTS, SECONDS))
    return {"checks": checks, "health": healths}


def main() -> dict[str, Any]:
    people = list(population(PEOPLE, dt.date.today(), seed=99))
    decisions = pure_decisions_per_second(people)
    print(f"pure domain: {decisions:,.0f} decisions/s")
    with tempfile.TemporaryDirectory() as tmp:
        emulators = start_emulators(Path(tmp))
        try:
            devhost = start_devhost({**emulators.environment, "DEVHOST_LOG_LEVEL": "WARNING",
                                     "ELIGIBILITY_CLIENT_BURST": "1000000"}, Path(tmp) / "devhost.log")
            try:
                runs = measure(devhost.url, people)
            finally:
                devhost.stop()
        finally:
            emulators.stop()
    checks, health = runs["checks"], runs["health"]
    assert set(checks.statuses) == {200}, checks.statuses
    print(f"eligibility via devhost: {checks.summary()} statuses={dict(checks.statuses)}")
    print(f"/api/health via devhost: {health.summary()} statuses={dict(health.statuses)}")
    result = {
        "benchmark": "eligibility",
        "pure_decisions_per_s": round(decisions),
        "eligibility_per_s": round(checks.per_second, 1),
        "health_per_s": round(health.per_second, 1),
        "eligibility_to_health_ratio": round(checks.per_second / health.per_second, 3),
        "eligibility_p50_ms": round(checks.percentile(50), 2),
        "eligibility_p99_ms": round(checks.percentile(99), 2),
        "health_p50_ms": round(health.percentile(50), 2),
        "health_p99_ms": round(health.percentile(99), 2),
        "clients": CLIENTS,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
