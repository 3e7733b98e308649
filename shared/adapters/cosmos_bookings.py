"""Booking documents, slot capacity and the site catalogue in Cosmos DB.

Filter predicates use only lower-case names and literals: the local emulator lower-cases the whole
condition before evaluating it (real Cosmos DB does not), so anything else would not match there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.domain.booking_record import Appointment, BookingRecord
from shared.domain.retention import booking_ttl, entry_ttl
from shared.ports.bookings import DayListItem, HoldOutcome, StoredBooking
from shared.ports.site_operations import UnsettledAppointment


def _hold_key(reference: str) -> str:
    return f"r{reference.lower()}"


def _entry_id(reference: str, appointment: Appointment) -> str:
    return f"{reference}.{appointment.slot_id}"


def _listing(appointment: Appointment, status: str) -> dict[str, Any]:
    """The fields a day list and the reminder timer read, on the booking document or an entry."""
    return {
        "dose": appointment.dose, "slotId": appointment.slot_id, "start": appointment.start.isoformat(),
        "localDate": appointment.local_date.isoformat(),
        "product": appointment.product, "siteName": appointment.site_name,
        "sitePostcode": appointment.site_postcode, "status": status,
    }


def _appointment_status(record: BookingRecord, appointment: Appointment) -> str:
    """The appointment's own status (checked in, vaccinated, missed), else its booking's."""
    return str(record.status_of(appointment))


# What a site's day list shows: every appointment that is or was to happen that day.
_DAY_LIST = ("SELECT * FROM c WHERE c.siteId = @site AND c.localDate = @day AND (c.status = 'confirmed' "
             "OR c.status = 'checkedIn' OR c.status = 'vaccinated' OR c.status = 'didNotAttend')")
# Appointments of earlier days still to happen: the did-not-attend timer's work.
_UNSETTLED = ("SELECT c.id, c.type, c.reference, c.siteId, c.homeSiteId, c.slotId FROM c "
              "WHERE c.localDate < @day AND (c.status = 'confirmed' OR c.status = 'checkedIn')")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def booking_document(record: BookingRecord, now: dt.datetime | None = None) -> dict[str, Any]:
    embedded = record.embedded()
    doc: dict[str, Any] = {
        "id": record.reference, "siteId": record.home_site_id, "type": "booking", "reference": record.reference,
        "contact": record.contact.model_dump(mode="json"),
        "bookedAt": (record.confirmed_at or record.created_at).isoformat(),
        "bookingStatus": str(record.status),
        "deadlineEpoch": record.deadline.timestamp(),
        "cleanupPending": record.cleanup is not None,
        "moveEpoch": record.move.since.timestamp() if record.move else None,
        "outboxPending": bool(record.outbox),
        "booking": record.model_dump(mode="json"),
        # Personal data expires once the booking's use is over (shared/domain/retention.py).
        "ttl": booking_ttl(record, now or _now()),
    }
    if embedded is not None:
        doc.update(_listing(embedded, _appointment_status(record, embedded)))
    else:
        doc["status"] = "moved"  # its appointments are all listed at other sites now
    return doc


class CosmosBookingRecords:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    @staticmethod
    def _stored(doc: dict[str, Any]) -> StoredBooking:
        return StoredBooking(BookingRecord.model_validate(doc["booking"]), doc["_etag"])

    async def create(self, record: BookingRecord) -> StoredBooking | None:
        try:
            doc = await self._container.create_item(booking_document(record))
        except CosmosResourceExistsError:
            return None
        return self._stored(doc)

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None:
        try:
            doc = await self._container.read_item(reference, partition_key=home_site_id)
        except CosmosResourceNotFoundError:
            return None
        return self._stored(doc) if doc.get("type") == "booking" else None

    async def find(self, reference: str) -> StoredBooking | None:
        found = await self._query("SELECT * FROM c WHERE c.id = @ref AND c.type = 'booking'",
                                  [{"name": "@ref", "value": reference}])
        return found[0] if found else None

    async def replace(self, stored: StoredBooking, record: BookingRecord) -> StoredBooking | None:
        try:
            doc = await self._container.replace_item(
                record.reference, booking_document(record), etag=stored.etag,
                match_condition=MatchConditions.IfNotModified)
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return None
        return self._stored(doc)

    async def put_appointment_entry(self, record: BookingRecord, appointment: Appointment) -> None:
        doc = {"id": _entry_id(record.reference, appointment), "siteId": appointment.site_id, "type": "appointment",
               "reference": record.reference, "homeSiteId": record.home_site_id,
               "contact": record.contact.model_dump(mode="json"),
               "bookedAt": (record.confirmed_at or record.created_at).isoformat(),
               **_listing(appointment, _appointment_status(record, appointment)),
               "ttl": entry_ttl(appointment, _now())}
        await self._container.upsert_item(doc)

    async def retire_appointment_entry(self, reference: str, appointment: Appointment, status: str) -> None:
        try:
            ttl = entry_ttl(appointment, _now(), retired=status in ("cancelled", "moved", "released"))
            await self._container.patch_item(_entry_id(reference, appointment), partition_key=appointment.site_id,
                                             patch_operations=[{"op": "set", "path": "/status", "value": status},
                                                               {"op": "set", "path": "/ttl", "value": ttl}])
        except CosmosResourceNotFoundError:
            pass  # never written: nothing to retire

    async def _query(self, query: str, parameters: list[dict[str, Any]]) -> list[StoredBooking]:
        found = self._container.query_items(query, parameters=parameters)  # cross-partition: a timer's job
        return [self._stored(doc) async for doc in found]

    async def stuck(self, now: dt.datetime, limit: int) -> list[StoredBooking]:
        epoch = now.timestamp()
        pending = await self._query(
            "SELECT * FROM c WHERE c.type = 'booking' AND c.bookingStatus = 'pending' AND c.deadlineEpoch < @now",
            [{"name": "@now", "value": epoch}])
        owing = await self._query(
            "SELECT * FROM c WHERE c.type = 'booking' AND (c.cleanupPending = true OR "
            "(IS_NUMBER(c.moveEpoch) AND c.moveEpoch < @old))",
            [{"name": "@old", "value": epoch - 60}])
        return (pending + owing)[:limit]

    async def with_unsent_events(self, limit: int) -> list[StoredBooking]:
        found = await self._query("SELECT * FROM c WHERE c.type = 'booking' AND c.outboxPending = true", [])
        return found[:limit]

    async def unsettled_before(self, day: dt.date, limit: int) -> list[UnsettledAppointment]:
        """Appointments of past days still confirmed or checked in: the did-not-attend timer's work.

        Cross-partition, on indexed paths only (localDate, status), once a day.
        """
        found = self._container.query_items(_UNSETTLED, parameters=[{"name": "@day", "value": day.isoformat()}])
        unsettled: list[UnsettledAppointment] = []
        async for doc in found:  # pages are fetched as read: stopping at the limit reads no further
            unsettled.append(UnsettledAppointment(
                reference=doc["reference"], slot_id=doc["slotId"],
                home_site_id=doc["siteId"] if doc["type"] == "booking" else doc["homeSiteId"]))
            if len(unsettled) >= limit:
                break
        return unsettled

    async def day_list(self, site_id: str, day: dt.date) -> list[DayListItem]:
        found = self._container.query_items(
            _DAY_LIST,
            parameters=[{"name": "@site", "value": site_id}, {"name": "@day", "value": day.isoformat()}],
            partition_key=site_id)
        items = []
        async for doc in found:
            # The booking's own document embeds the person; an entry listing it at another site does not.
            own = doc["type"] == "booking"
            items.append(DayListItem(
                reference=doc["reference"], home_site_id=doc["siteId"] if own else doc["homeSiteId"],
                dose=doc["dose"], slot_id=doc["slotId"], start=dt.datetime.fromisoformat(doc["start"]),
                product=doc["product"], status=doc["status"],
                person=BookingRecord.model_validate(doc["booking"]).person if own else None))
        return items


class CosmosSlotHolds:
    """Each slot counts `booked` against `capacity` and keeps which references hold it."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def hold(self, slot_id: str, site_id: str, reference: str, now: dt.datetime) -> HoldOutcome:
        key = _hold_key(reference)
        try:
            await self._container.patch_item(
                slot_id, partition_key=site_id,
                patch_operations=[{"op": "incr", "path": "/booked", "value": 1},
                                  {"op": "set", "path": f"/holds/{key}", "value": now.isoformat()}],
                filter_predicate=f"FROM c WHERE c.booked < c.capacity AND c.status = 'open' "
                                 f"AND NOT IS_DEFINED(c.holds.{key})")
            return "held"
        except CosmosResourceNotFoundError:
            return "missing"
        except CosmosAccessConditionFailedError:
            pass
        # Refused: full, closed, or this reference already holds it (a repeated step). One read tells.
        try:
            slot = await self._container.read_item(slot_id, partition_key=site_id)
        except CosmosResourceNotFoundError:
            return "missing"
        if key in (slot.get("holds") or {}):
            return "held"
        return "full" if slot.get("status") == "open" else "missing"

    async def release(self, slot_id: str, site_id: str, reference: str) -> None:
        key = _hold_key(reference)
        try:
            await self._container.patch_item(
                slot_id, partition_key=site_id,
                patch_operations=[{"op": "incr", "path": "/booked", "value": -1},
                                  {"op": "remove", "path": f"/holds/{key}"}],
                filter_predicate=f"FROM c WHERE IS_DEFINED(c.holds.{key})")
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            pass  # not held (already released, or never taken): nothing to give back


    async def holders(self, slot_id: str, site_id: str) -> list[str]:
        try:
            slot = await self._container.read_item(slot_id, partition_key=site_id)
        except CosmosResourceNotFoundError:
            return []
        return [key[1:].upper() for key in slot.get("holds") or {}]
