"""Demo sites for `make dev`: centres, pharmacies and GP practices across England with four weeks of sessions."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import logging
import os
import random
import time
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from shared.adapters.offline_postcodes import DATA_DIR, SECTORS_FILE

log = logging.getLogger("devhost.demo")

# Everything goes in through the same services the admin routes use. Centres stand at the real postcodes
# the demo population lives at; pharmacies and practices stand in real postcode sectors across England,
# picked in proportion to how many postcodes each sector has (so, like people, mostly in towns), with
# made-up unit letters: a demo postcode always locates, to its real sector's centroid. ODS codes are made
# up too, except that the first GP practices carry the codes the demo population is registered with.

# England's postcode areas by their main town. Areas mostly in Wales or Scotland (CF, LD, LL, NP, SA, SY,
# DG, TD, ...) are left out, so every demo site is in England.
AREA_NAMES: dict[str, str] = {
    "AL": "St Albans", "B": "Birmingham", "BA": "Bath", "BB": "Blackburn", "BD": "Bradford", "BH": "Bournemouth",
    "BL": "Bolton", "BN": "Brighton", "BR": "Bromley", "BS": "Bristol", "CA": "Carlisle", "CB": "Cambridge",
    "CH": "Chester", "CM": "Chelmsford", "CO": "Colchester", "CR": "Croydon", "CT": "Canterbury", "CV": "Coventry",
    "CW": "Crewe", "DA": "Dartford", "DE": "Derby", "DH": "Durham", "DL": "Darlington", "DN": "Doncaster",
    "DT": "Dorchester", "DY": "Dudley", "E": "East London", "EC": "City of London", "EN": "Enfield",
    "EX": "Exeter", "FY": "Blackpool", "GL": "Gloucester", "GU": "Guildford", "HA": "Harrow",
    "HD": "Huddersfield", "HG": "Harrogate", "HP": "Hemel Hempstead", "HR": "Hereford", "HU": "Hull",
    "HX": "Halifax", "IG": "Ilford", "IP": "Ipswich", "KT": "Kingston", "L": "Liverpool", "LA": "Lancaster",
    "LE": "Leicester", "LN": "Lincoln", "LS": "Leeds", "LU": "Luton", "M": "Manchester", "ME": "Medway",
    "MK": "Milton Keynes", "N": "North London", "NE": "Newcastle", "NG": "Nottingham", "NN": "Northampton",
    "NR": "Norwich", "NW": "North West London", "OL": "Oldham", "OX": "Oxford", "PE": "Peterborough",
    "PL": "Plymouth", "PO": "Portsmouth", "PR": "Preston", "RG": "Reading", "RH": "Redhill", "RM": "Romford",
    "S": "Sheffield", "SE": "South East London", "SG": "Stevenage", "SK": "Stockport", "SL": "Slough",
    "SM": "Sutton", "SN": "Swindon", "SO": "Southampton", "SP": "Salisbury", "SR": "Sunderland",
    "SS": "Southend", "ST": "Stoke-on-Trent", "SW": "South West London", "TA": "Taunton", "TF": "Telford",
    "TN": "Tonbridge", "TQ": "Torquay", "TR": "Truro", "TS": "Middlesbrough", "TW": "Twickenham",
    "UB": "Uxbridge", "W": "West London", "WA": "Warrington", "WC": "Holborn", "WD": "Watford",
    "WF": "Wakefield", "WN": "Wigan", "WR": "Worcester", "WS": "Walsall", "WV": "Wolverhampton", "YO": "York",
}
# Chester's districts over the border.
_WELSH_DISTRICTS = frozenset({"CH5", "CH6", "CH7", "CH8"})
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_PHARMACY_NAMES = ("Market Street", "Parkside", "Riverside", "Station Road", "High Street", "Village", "Green Lane",
                   "Church Road", "Victoria", "Meadow")
_PRACTICE_NAMES = ("Health Centre", "Medical Practice", "Surgery", "Family Practice", "Medical Centre")

PHARMACIES = 160
GP_PRACTICES = 115
DAYS = 28
_SITES_AT_ONCE = 4


@dataclass(frozen=True)
class DemoSite:
    registration: dict[str, Any]
    sessions: list[dict[str, Any]]


def _english_sectors() -> list[tuple[str, int]]:
    with (DATA_DIR / SECTORS_FILE).open(newline="", encoding="ascii") as lines:
        rows = csv.reader(lines)
        next(rows)
        found = []
        for sector, _, _, postcodes in rows:
            district = sector.split(" ")[0]
            if "".join(takewhile(str.isalpha, district)) in AREA_NAMES and district not in _WELSH_DISTRICTS:
                found.append((sector, int(postcodes)))
        return found


def _area_name(postcode: str) -> str:
    return AREA_NAMES["".join(takewhile(str.isalpha, postcode))]


def _session(day: dt.date, start: str, end: str, minutes: int, capacity: int, product: str) -> dict[str, Any]:
    return {"date": day.isoformat(), "start": start, "end": end, "slotMinutes": minutes,
            "capacityPerSlot": capacity, "product": product}


def demo_sites(today: dt.date, seed: int = 2021) -> list[DemoSite]:
    """The demo sites and their sessions from `today` for four weeks, the same ones for the same seed."""
    from devhost.demo_data import GP_PRACTICES as POPULATION_PRACTICES
    from devhost.demo_data import POSTCODES

    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    days = [today + dt.timedelta(days=n) for n in range(DAYS)]
    sites: list[DemoSite] = []
    # Mass vaccination centres, open every day, one vaccine a day in turn, 30 people every half hour.
    for number, postcode in enumerate(POSTCODES, start=1):
        rotation = ("PFIZER", "MODERNA", "PFIZER", "ASTRAZENECA")
        sessions = [_session(day, "08:30", "16:30", 30, 30, rotation[day.toordinal() % 4]) for day in days]
        sites.append(DemoSite({"name": f"{_area_name(postcode)} Vaccination Centre", "type": "vaccinationCentre",
                               "odsCode": f"VC{number:03d}", "postcode": postcode,
                               "products": ["PFIZER", "MODERNA", "ASTRAZENECA"], "ageBands": [{"minAge": 12}]},
                              sessions))
    sectors = _english_sectors()
    weights = [count for _, count in sectors]
    chosen: list[str] = []
    while len(chosen) < PHARMACIES + GP_PRACTICES:
        sector = rng.choices(sectors, weights=weights)[0][0]
        if sector not in chosen:
            chosen.append(sector)
    for index, sector in enumerate(chosen):
        postcode = f"{sector}{rng.choice(_UNIT_LETTERS)}{rng.choice(_UNIT_LETTERS)}"
        district = sector.split(" ")[0]
        if index < PHARMACIES:
            # Two mornings a week, three people every quarter of an hour.
            products = rng.choice((["PFIZER"], ["MODERNA"], ["PFIZER", "MODERNA"]))
            weekdays = sorted(rng.sample(range(6), 2))
            sessions = [_session(day, "10:00", "13:00", 15, 3, products[day.toordinal() % len(products)])
                        for day in days if day.weekday() in weekdays]
            sites.append(DemoSite({"name": f"{rng.choice(_PHARMACY_NAMES)} Pharmacy, {district}", "type": "pharmacy",
                                   "odsCode": f"F{chr(65 + index // 100)}{index % 100:03d}", "postcode": postcode,
                                   "products": products, "ageBands": [{"minAge": 18}]}, sessions))
        else:
            # A clinic one day a week, six people every quarter of an hour.
            number = index - PHARMACIES
            ods = POPULATION_PRACTICES[number] if number < len(POPULATION_PRACTICES) else f"Y{90000 + number}"
            weekday = rng.choice((0, 2, 5))
            sessions = [_session(day, "09:00", "12:00", 15, 6, "PFIZER") for day in days if day.weekday() == weekday]
            sites.append(DemoSite({"name": f"{_area_name(postcode)} {rng.choice(_PRACTICE_NAMES)} ({district})",
                                   "type": "gpPractice", "odsCode": ods, "postcode": postcode,
                                   "products": ["PFIZER", "ASTRAZENECA"], "ageBands": [{"minAge": 16}]}, sessions))
    return sites


async def load_demo_sites(today: dt.date | None = None) -> tuple[int, int]:
    """Register the demo sites and open their sessions; returns (sites registered, slots opened).

    DEMO_SITES caps how many (default all 300, centres first; 0 for none). A site that exists already
    (an emulator kept running from an earlier start) is left as it is.
    """
    from functions.admin_sites import registration_command
    from shared.api.site_models import OpenSessionRequest, SiteRegistration
    from shared.composition import services
    from shared.domain.staff import NATIONAL_ADMIN, Principal
    from shared.services.errors import SiteExists
    from shared.services.sites.common import london_today

    app = services()
    today = today or london_today(app.clock)
    demo_admin = Principal(user_id="demo-data", name="Demo data", roles=frozenset({NATIONAL_ADMIN}))
    limit = asyncio.Semaphore(_SITES_AT_ONCE)
    counts = {"sites": 0, "slots": 0}

    async def load(demo: DemoSite) -> None:
        async with limit:
            command = registration_command(SiteRegistration.model_validate(demo.registration))
            try:
                registered = await app.site_admin.register(command, demo_admin, None)
            except SiteExists:
                return
            counts["sites"] += 1
            for fields in demo.sessions:
                opened = await app.site_admin.open_session(registered.site_id,
                                                           OpenSessionRequest.model_validate(fields), demo_admin, None)
                counts["slots"] += opened.slot_count

    started = time.monotonic()
    demos = demo_sites(today)
    if (wanted := os.environ.get("DEMO_SITES")) is not None:
        demos = demos[:int(wanted)]
    await asyncio.gather(*(load(demo) for demo in demos))
    log.info("demo data: %d sites with %d slots in %.0f s", counts["sites"], counts["slots"],
             time.monotonic() - started)
    return counts["sites"], counts["slots"]
