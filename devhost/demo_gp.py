"""Demo GP practices for `make dev`: three practices with a week of clinics, their patients on the register,
and a patient list dropped in gp-uploads, checked and invited, so that a report and invitation texts
(at /dev/sms) appear within a minute of starting.

Everything is made up: NHS numbers from the 999 test range, mobiles from Ofcom's drama range. It goes in
through the same services the routes use; the list arrives as a GP system's would, as a blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any

from shared.domain.nhs_number import synthetic_nhs_number

log = logging.getLogger("devhost.demo")

# ODS codes of their own, so the practices never collide with devhost/demo_sites.py's.
PRACTICES: tuple[tuple[str, str, str], ...] = (
    ("Y80001", "Riverside Surgery", "LS1 4AP"),
    ("Y80002", "Parkside Medical Practice", "M1 1AE"),
    ("Y80003", "Hillside Health Centre", "B1 1AA"),
)
DEMO_FILE = "demo-patients"
_FIRST_SEED = 880_000  # beyond the demo population's seeds
PEOPLE = 24


def demo_people(today: dt.date) -> list[dict[str, Any]]:
    """Register records of the demo practice's patients: adults, a child, someone fully vaccinated."""
    people = []
    for index in range(PEOPLE):
        age = 30 + (index * 7) % 55
        record: dict[str, Any] = {
            "nhsNumber": synthetic_nhs_number(_FIRST_SEED + index),
            "dateOfBirth": (today - dt.timedelta(days=age * 365 + 40)).isoformat(),
            "givenName": ("Olivia", "Noah", "Priya", "Jack", "Aisha", "Wei")[index % 6],
            "familyName": ("Smith", "Khan", "Taylor", "Nowak")[index % 4],
            "postcode": "LS1 4AP",
            "gpPracticeOds": PRACTICES[0][0],
        }
        if index % 5 != 4:
            record["mobile"] = f"07700 900{500 + index:03d}"
        if index == 6:
            record["dateOfBirth"] = (today - dt.timedelta(days=10 * 365)).isoformat()  # a child: no cohort
        if index == 7:
            record["vaccinations"] = [{"product": "PFIZER", "dose": d, "administeredAt": (
                today - dt.timedelta(days=400 - 100 * d)).isoformat()} for d in (1, 2, 3)]
        people.append(record)
    return people


def demo_list(people: list[dict[str, Any]]) -> str:
    """The practice's CSV: most of its patients, one twice, one typo, one not on the register."""
    lines = ["NHS Number,Date of Birth,Family Name,Given Name,Postcode,Mobile"]
    for person in people:
        number = person["nhsNumber"]
        lines.append(f"{number[:3]} {number[3:6]} {number[6:]},{person['dateOfBirth']},{person['familyName']},"
                     f"{person['givenName']},{person['postcode']},{person.get('mobile', '')}")
    lines.append(f"{people[0]['nhsNumber']},{people[0]['dateOfBirth']},Smith,Olivia,LS1 4AP,")  # twice
    lines.append("9990000000,1970-01-01,Typo,Tom,LS1 4AP,")  # a bad check digit
    lines.append(f"{synthetic_nhs_number(_FIRST_SEED + 500)},1980-05-05,Stranger,Sam,LS1 4AP,07700900999")
    return "\r\n".join(lines) + "\r\n"


async def load_demo_gp() -> None:
    """Practices, clinics, register records, the list in gp-uploads; then, once it is checked, invitations."""
    from functions.admin_register import decode_records
    from functions.admin_sites import registration_command
    from shared import resources
    from shared.api.site_models import OpenSessionRequest, SiteRegistration
    from shared.composition import services
    from shared.domain.staff import NATIONAL_ADMIN, Principal
    from shared.services.errors import ChangedMeanwhile, SessionOverlaps, SiteExists
    from shared.services.gp.invitations import InviteCommand
    from shared.services.sites.common import london_today

    app = services()
    admin = Principal(user_id="demo-data", name="Demo data", roles=frozenset({NATIONAL_ADMIN}))
    today = london_today(app.clock)
    started = time.monotonic()
    for ods, name, postcode in PRACTICES:
        with contextlib.suppress(SiteExists):
            await app.site_admin.register(registration_command(SiteRegistration.model_validate({
                "name": name, "type": "gpPractice", "odsCode": ods, "postcode": postcode,
                "products": ["PFIZER", "ASTRAZENECA"], "ageBands": [{"minAge": 16}]})), admin, None)
        for day in range(1, 8):
            with contextlib.suppress(SessionOverlaps):
                await app.site_admin.open_session(ods, OpenSessionRequest.model_validate({
                    "date": (today + dt.timedelta(days=day)).isoformat(), "start": "09:00", "end": "12:00",
                    "slotMinutes": 10, "capacityPerSlot": 2, "product": "PFIZER"}), admin, None)
    people = demo_people(today)
    await app.register_import.import_records(decode_records(people))
    uploads = app.clients.blobs().get_container_client(resources.BLOB_GP_UPLOADS)
    ods = PRACTICES[0][0]
    await uploads.upload_blob(f"{ods}/{DEMO_FILE}.csv", demo_list(people).encode(), overwrite=True)
    # The blob trigger checks it (Event Grid, through devhost); the practice then invites its people.
    for _ in range(120):
        stored = await app.gp_store.get_upload(ods, DEMO_FILE)
        if stored is not None and stored.record.status != "processing":
            break
        await asyncio.sleep(0.5)
    else:
        log.warning("demo GP list: not checked within a minute; invite from POST /api/gp/%s/invitations", ods)
        return
    try:
        result = await app.gp_invitations.invite(InviteCommand(ods, DEMO_FILE), admin)
    except ChangedMeanwhile:
        return
    log.info("demo GP practices: %d practices, report at gp-reports/%s/%s.report.csv, %d invited in %.0f s "
             "(texts at /dev/sms)", len(PRACTICES), ods, DEMO_FILE, result.invited, time.monotonic() - started)
