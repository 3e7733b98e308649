"""Builds sites, slots and people through the app's own adapters for booking tests, and checks the invariants."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared import resources
from shared.composition import Services
from shared.domain.booking_record import BookingRecord
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.register import RegisterRecord
from shared.domain.sites import LONDON, Site
from shared.domain.slots import Slot, slot_id

# People of every World in this process come from one run of seeds, so no two tests share a person (random
# picks from the ~890,000 test numbers collided once in a few thousand: a person already booked by another
# test); the random start keeps separate runs against one emulator apart.
_PEOPLE_SEEDS = itertools.count(random.Random(uuid.uuid4().int).randrange(300_000, 700_000))


@dataclass
class World:
    app: Services
    site_id: str = field(default_factory=lambda: f"T{uuid.uuid4().hex[:10]}")

    def container(self, name: str) -> Any:
        return self.app.clients.database().get_container_client(name)

    async def site(self, site_id: str | None = None, products: tuple[str, ...] = ("PFIZER", "MODERNA", "ASTRAZENECA"),
                   name: str = "Test Centre") -> str:
        site_id = site_id or self.site_id
        site = Site.model_validate({"siteId": site_id, "name": name, "type": "vaccinationCentre", "odsCode": "TST01",
                                    "postcode": "LS1 4AP", "location": {"lat": 53.8, "lon": -1.55},
                                    "products": list(products), "ageBands": [{"minAge": 12}]})
        await self.app.site_store.create_site(site, None, "booking-world", self.app.clock.now())
        return site_id

    async def slot(self, start: dt.datetime, capacity: int, product: str = "PFIZER", site_id: str | None = None) -> str:
        site_id = site_id or self.site_id
        ident = slot_id(site_id, start, product)
        await self.app.site_store.create_slots((Slot(
            slot_id=ident, site_id=site_id, session_id="s", product=product, start=start,
            end=start + dt.timedelta(minutes=10), local_date=start.astimezone(LONDON).date(), capacity=capacity),))
        return ident

    async def people(self, count: int, born: str = "1960-05-05", **extra: Any) -> list[str]:
        numbers = [synthetic_nhs_number(next(_PEOPLE_SEEDS)) for _ in range(count)]
        answer = await self.app.register_import.import_records([RegisterRecord.model_validate(
            {"nhsNumber": n, "dateOfBirth": born, "givenName": "Book", "familyName": "Tester", "postcode": "LS1 4AP",
             **extra}) for n in numbers])
        assert answer.imported == count, answer.rejected
        return numbers

    async def slot_doc(self, ident: str, site_id: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = await self.container(resources.SLOTS.name).read_item(
            ident, partition_key=site_id or self.site_id)
        return doc

    async def booking(self, reference: str, site_id: str | None = None) -> BookingRecord | None:
        stored = await self.app.booking_records.get(reference, site_id or self.site_id)
        return stored.record if stored else None

    async def check_invariants(self, slot_ids: list[str], numbers: list[str]) -> None:
        """Slot counters equal their holds, each hold and each dose marker belongs to a live booking."""
        for ident in slot_ids:
            slot = await self.slot_doc(ident)
            holds = slot["holds"]
            assert slot["booked"] == len(holds), f"{ident}: booked {slot['booked']} but {len(holds)} holds"
            assert slot["booked"] <= slot["capacity"]
            for key in holds:
                record = await self.booking(key[1:].upper())
                assert record is not None and record.status == "confirmed", f"hold {key} has no confirmed booking"
        for number in numbers:
            view = await self.app.patient_store.booking_view(number)
            for dose, claim in view.claims.items():
                record = await self.booking(claim.reference, claim.home_site_id)
                assert record is not None and record.status == "confirmed", f"dose {dose} marker has no booking"
