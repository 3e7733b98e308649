"""Locust: the whole citizen journey, stepped up in users until latency or errors break.

Run by `bench/journey.py`, which starts the platform, seeds it and reads the results; on its own:
`JOURNEY_PEOPLE=people.json locust -f bench/journey_locust.py --headless --host http://127.0.0.1:7071`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, task

PEOPLE: list[dict[str, str]] = json.loads(Path(os.environ["JOURNEY_PEOPLE"]).read_text())
POSTCODES = json.loads(os.environ.get("JOURNEY_POSTCODES", '["LS1 4AP"]'))
_next_person = itertools.count()
STEP_SECONDS = float(os.environ.get("JOURNEY_STEP_SECONDS", "15"))
STEPS = [int(n) for n in os.environ.get("JOURNEY_STEPS", "4,8,16,32,64,128,192").split(",")]
BREAK_P95_MS = float(os.environ.get("JOURNEY_BREAK_P95_MS", "2000"))
BREAK_FAILURE_RATIO = float(os.environ.get("JOURNEY_BREAK_FAILURE_RATIO", "0.02"))


class Citizen(FastHttpUser):
    """One person's visit: queue, eligibility, search, slots, book, look up. Each visit is a new person.

    Each visit comes from an address of its own, as the platform's front end reports it: real callers
    are many, and the per-address throttles would otherwise see one caller making every request.
    """

    _from: dict[str, str] = {}

    @task
    def journey(self) -> None:
        index = next(_next_person)
        if index >= len(PEOPLE):
            return
        person = PEOPLE[index]
        self._from = {"x-forwarded-for": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"}
        joined = self._post("/api/queue/join", {}, "queue/join")
        if joined is None:
            return
        status = self._post("/api/queue/status", {"ticket": joined["ticket"]}, "queue/status")
        token = (status or joined).get("admissionToken")
        who = {"nhsNumber": person["nhsNumber"], "dateOfBirth": person["dateOfBirth"]}
        if self._post("/api/eligibility", who, "eligibility") is None:
            return
        # Search takes the district only (a full postcode in a query string would be personal data).
        district = random.choice(POSTCODES).split()[0]
        with self.client.get(f"/api/sites?postcode={district}&radiusKm=60&product=PFIZER", name="sites",
                             headers=self._from, catch_response=True) as answer:
            sites = [s for s in (answer.json() or {}).get("sites", []) if s.get("nextAvailableDate")] \
                if answer.status_code == 200 else []
        if not sites:
            return
        site = random.choice(sites[:5])
        with self.client.get(f"/api/sites/{site['siteId']}/slots?product=PFIZER", name="sites/{id}/slots",
                             headers=self._from, catch_response=True) as answer:
            slots = [s for s in answer.json().get("slots", []) if s["remaining"] > 0] \
                if answer.status_code == 200 else []
        if not slots:
            return
        slot = random.choice(slots[:20])
        headers = {**self._from, "Authorization": f"Bearer {token}"} if token else self._from
        with self.client.post("/api/bookings", json={**who, "appointments": [{"slotId": slot["slotId"]}]},
                              headers=headers, name="bookings", catch_response=True) as answer:
            if answer.status_code == 409 and answer.json().get("code") == "SLOT_FULL":
                answer.success()  # a lost race for the last place is an answer, not an error
                return
            if answer.status_code != 201:
                answer.failure(f"{answer.status_code}")
                return
            reference = answer.json()["reference"]
        self._post("/api/bookings/lookup", {**who, "reference": reference}, "bookings/lookup")

    def _post(self, path: str, body: dict[str, Any], name: str) -> dict[str, Any] | None:
        with self.client.post(path, json=body, name=name, headers=self._from, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}")
                return None
            parsed: dict[str, Any] = answer.json()
            return parsed


class StepUntilBroken(LoadTestShape):
    """Each step holds a number of users for STEP_SECONDS; stops after the step where p95 or errors broke."""

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        step = int(run_time // STEP_SECONDS)
        if step >= len(STEPS):
            return None
        if step > 0 and run_time % STEP_SECONDS < 1.0 and self._broken():
            return None
        return STEPS[step], float(STEPS[step])

    def _broken(self) -> bool:
        if self.runner is None:
            return False
        total = self.runner.stats.total
        p95 = total.get_current_response_time_percentile(0.95) or 0
        ratio = total.num_failures / total.num_requests if total.num_requests else 0.0
        return p95 > BREAK_P95_MS or ratio > BREAK_FAILURE_RATIO
