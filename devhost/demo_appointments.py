"""Demo appointments for `make dev`: a few demo people booked into today's slots at the first centre, and a
demo member of staff assigned to it, so that there is a day list to check people in from and doses to record.

Sign in as that member of staff at `/dev/signin?roles=SiteStaff&name=Site%20Staff`, then:
`GET /api/admin/sites/VC001/appointments` (today's list) and `POST /api/admin/checkins {"reference": ...}`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

from shared.domain.eligibility import PatientFacts, Vaccination, decide_eligibility
from shared.domain.people import Flag
from shared.domain.policy import DEFAULT_POLICY
from shared.domain.sites import LONDON
from shared.domain.slots import slot_id

log = logging.getLogger("devhost.demo")

DEMO_SITE = "VC001"  # the first demo centre (devhost/demo_sites.py), open every day 08:30-16:30
DEMO_STAFF_NAME = "Site Staff"
APPOINTMENTS = 8
_ROTATION = ("PFIZER", "MODERNA", "PFIZER", "ASTRAZENECA")  # the centres' product of the day, as demo_sites opens


def demo_staff_user() -> str:
    """The user id devhost's development sign-in gives `name=Site Staff` (devhost/http_triggers.py)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"devhost:{DEMO_STAFF_NAME}"))


class _MorningClock:
    """Seven this morning in London: every one of today's slots is still ahead, so all can be booked."""

    def __init__(self, today: dt.date) -> None:
        self._at = dt.datetime.combine(today, dt.time(7, 0), tzinfo=LONDON).astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._at


def _due_today(people: Iterator[dict[str, Any]], today: dt.date, product: str) -> Iterator[dict[str, Any]]:
    """Demo people who may have `product` today: eligible, due, and allowed it."""
    for record in people:
        facts = PatientFacts(date_of_birth=dt.date.fromisoformat(record["dateOfBirth"]),
                             flags=frozenset(Flag(f) for f in record["flags"]),
                             vaccinations=tuple(Vaccination.model_validate(v) for v in record["vaccinations"]))
        decision = decide_eligibility(facts, DEFAULT_POLICY, today)
        if decision.eligible and decision.earliest_date == today and product in decision.allowed_products:
            yield record


async def load_demo_appointments(today: dt.date | None = None) -> int:
    """Book demo people into today's slots at VC001 (again: the same bookings, by Idempotency-Key)."""
    from devhost.demo_data import population
    from shared.composition import Services, services
    from shared.domain.staff import NATIONAL_ADMIN, Principal
    from shared.services.booking import BookAppointments
    from shared.services.errors import Refusal

    app = services()
    today = today or dt.datetime.now(LONDON).date()
    admin = Principal(user_id="demo-data", name="Demo data", roles=frozenset({NATIONAL_ADMIN}))
    await app.staff_access.assign(demo_staff_user(), (DEMO_SITE,), admin)
    morning = Services(app.clients, _MorningClock(today))
    product = _ROTATION[today.toordinal() % 4]
    count = int(os.environ.get("DEMO_PATIENTS", "100000"))
    # The population was made with the date it was loaded on, which is today.
    chosen = _due_today(population(count, dt.datetime.now(dt.UTC).date()), today, product)
    booked = 0
    for index, record in zip(range(APPOINTMENTS), chosen, strict=False):
        start = dt.datetime.combine(today, dt.time(9 + index, 0 if index % 2 else 30), tzinfo=LONDON)
        command = BookAppointments(nhs_number=record["nhsNumber"],
                                   date_of_birth=dt.date.fromisoformat(record["dateOfBirth"]),
                                   slot_ids=(slot_id(DEMO_SITE, start, product),), mobile=record.get("mobile"))
        try:
            await morning.bookings.book(command, idempotency_key=f"demo-day-list-{today.isoformat()}")
            booked += 1
        except Refusal as refused:
            log.info("demo appointments: one not booked (%s)", type(refused).__name__)
    log.info("demo appointments: %d booked today at %s; sign in at /dev/signin?roles=SiteStaff&name=Site%%20Staff",
             booked, DEMO_SITE)
    return booked
