"""Demo data for `make dev`: a synthetic population, loaded through the same services the routes use.

Everything here is made up: NHS numbers come from the 999 test range (never issued to anyone),
mobiles from Ofcom's drama range (07700 900xxx, never issued), emails at example.com.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
from collections.abc import Iterator
from typing import Any

from shared.domain.nhs_number import synthetic_nhs_number
from shared.observability import redacted_traceback

log = logging.getLogger("devhost.demo")

# England's population by five-year age band, in thousands: the approximate shape of the ONS mid-2020
# estimates (the last band is 90 and over). Only the proportions matter here.
AGE_BANDS: tuple[tuple[int, int], ...] = (
    (0, 3300), (5, 3500), (10, 3300), (15, 3100), (20, 3400), (25, 3800), (30, 3800), (35, 3700),
    (40, 3400), (45, 3600), (50, 3900), (55, 3700), (60, 3200), (65, 2800), (70, 2800), (75, 2000),
    (80, 1400), (85, 850), (90, 530),
)
GIVEN_NAMES = ("Olivia", "Amelia", "Isla", "Ava", "Mohammed", "Noah", "Oliver", "George", "Priya", "Aisha",
               "Grace", "Jack", "Harry", "Leo", "Freya", "Arthur", "Fatima", "Wei", "Siobhan", "Tomasz")
FAMILY_NAMES = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Khan",
                "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Nowak")
# Real postcodes near city centres across England, so that site search has something to find.
POSTCODES = ("LS1 4AP", "M1 1AE", "B1 1AA", "L1 8JQ", "NE1 7RU", "S1 2HE", "BS1 4DJ", "NG1 5FW", "LE1 6ZG",
             "SW1A 1AA", "E1 6AN", "N1 9GU", "SE1 9SG", "CB2 1TN", "OX1 2JD", "PL1 2AA", "NR1 3QU", "YO1 7HH",
             "CV1 5FB", "SO14 7DU", "BN1 1EE", "EX1 1HS", "HU1 2AA", "DE1 2FS", "PE1 1QF")
GP_PRACTICES = tuple(f"Y{90000 + i}" for i in range(40))


def _age_of_someone(rng: random.Random) -> int:
    lower, _ = rng.choices(AGE_BANDS, weights=[w for _, w in AGE_BANDS])[0]
    return lower + rng.randrange(10 if lower == 90 else 5)


def _flags(rng: random.Random, age: int) -> list[str]:
    """Flags at roughly the rates England's programme saw."""
    flags = []
    if age >= 65 and rng.random() < 0.012:
        flags.append("careHomeResident")
    if 20 <= age < 67 and rng.random() < 0.06:
        flags.append("healthOrSocialCareWorker")
    if rng.random() < 0.04:
        flags.append("clinicallyExtremelyVulnerable")
    if 16 <= age < 65 and rng.random() < 0.18:
        flags.append("atRisk")
    if 16 <= age < 65 and rng.random() < 0.05:
        flags.append("carer")
    return flags


def _history(rng: random.Random, age: int, today: dt.date) -> list[dict[str, Any]]:
    """None, one dose, a complete course or boosted, older people further along, dated relative to today."""
    if age < 12:
        return []
    weights = (10, 10, 40, 40) if age >= 50 else (30, 20, 35, 15) if age >= 18 else (60, 25, 15, 0)
    state = rng.choices(("none", "one", "complete", "boosted"), weights=weights)[0]
    if state == "none":
        return []
    products = ("PFIZER", "MODERNA", "ASTRAZENECA") if age >= 40 else ("PFIZER", "MODERNA") if age >= 18 \
        else ("PFIZER",)
    product = rng.choice(products)
    # Recent enough that some are due now and some not yet: the interesting cases for a demo.
    if state == "one":
        first = today - dt.timedelta(days=rng.randrange(1, 120))
        return [{"product": product, "dose": 1, "administeredAt": first.isoformat()}]
    second = today - dt.timedelta(days=rng.randrange(1, 240) if state == "complete" else rng.randrange(120, 400))
    first = second - dt.timedelta(days=rng.randrange(56, 85))
    doses = [{"product": product, "dose": 1, "administeredAt": first.isoformat()},
             {"product": product, "dose": 2, "administeredAt": second.isoformat()}]
    if state == "boosted":
        booster = second + dt.timedelta(days=rng.randrange(91, 110))
        doses.append({"product": "PFIZER", "dose": 3, "administeredAt": min(booster, today).isoformat()})
    return doses


def population(count: int, today: dt.date, seed: int = 2021) -> Iterator[dict[str, Any]]:
    """`count` NIMS records, the same ones for the same seed, in the shape POST /api/admin/nims/patients takes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    for index in range(count):
        age = _age_of_someone(rng)
        born = today - dt.timedelta(days=age * 365 + rng.randrange(365))
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        record: dict[str, Any] = {
            "nhsNumber": synthetic_nhs_number(index),
            "dateOfBirth": born.isoformat(),
            "givenName": given,
            "familyName": family,
            "postcode": rng.choice(POSTCODES),
            "gpPracticeOds": rng.choice(GP_PRACTICES),
            "flags": _flags(rng, age),
            "vaccinations": _history(rng, age, today),
        }
        if rng.random() < 0.85:
            record["mobile"] = f"07700 900{rng.randrange(1000):03d}"
        if rng.random() < 0.3:
            record["email"] = f"{given.lower()}.{family.lower()}{index}@example.com"
        yield record


async def load_population(count: int, batch_size: int = 1000) -> int:
    """Import `count` synthetic people as the import route does (decoded, then the service); how many went in."""
    from functions.admin_register import decode_records
    from shared.composition import services

    app = services()
    today = app.clock.now().date()
    imported = 0
    batch: list[dict[str, Any]] = []
    for record in population(count, today):
        batch.append(record)
        if len(batch) == batch_size:
            imported += (await app.register_import.import_records(decode_records(batch))).imported
            batch = []
            if imported % 20_000 == 0:
                log.info("demo data: %d of %d people imported", imported, count)
    if batch:
        imported += (await app.register_import.import_records(decode_records(batch))).imported
    return imported


async def load_demo_data() -> None:
    """Load each area's demo data; DEMO_PATIENTS sets the population size (default 100,000)."""
    count = int(os.environ.get("DEMO_PATIENTS", "100000"))
    try:
        from devhost.demo_gp import load_demo_gp

        await load_demo_gp()  # a few seconds: a GP list's report and invitations before the population loads
    except Exception as error:
        log.error("demo GP practices failed to load:\n%s", redacted_traceback(error))
    started = dt.datetime.now(dt.UTC)
    try:
        imported = await load_population(count)
    except Exception as error:
        log.error("demo data failed to load:\n%s", redacted_traceback(error))
        return
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    log.info("demo data: %d synthetic people imported in %.0f s", imported, seconds)
    try:
        from devhost.demo_sites import load_demo_sites

        await load_demo_sites()  # logs its own figures
    except Exception as error:
        log.error("demo sites failed to load:\n%s", redacted_traceback(error))
    try:
        from devhost.demo_appointments import load_demo_appointments

        await load_demo_appointments()  # a day list to check people in from (docs/site-operations.md)
    except Exception as error:
        log.error("demo appointments failed to load:\n%s", redacted_traceback(error))


if __name__ == "__main__":
    # `python -m devhost.demo_data 5`: people to try the booking journey with (printed, never logged).
    import json
    import sys

    for sample in population(int(sys.argv[1]) if len(sys.argv) > 1 else 5, dt.datetime.now(dt.UTC).date()):
        print(json.dumps({k: sample[k] for k in ("nhsNumber", "dateOfBirth", "vaccinations")}))
