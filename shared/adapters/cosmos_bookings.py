"""Booking documents and slot capacity in Cosmos DB: both in the `bookings` container, a partition per site.

Slot documents (`type` "slot") live beside the bookings of their site so that a booking and the places it
takes are one transactional batch (docs/bookings.md). Every document here has a `type`: "booking",
"appointment" (a day-list entry), "slot", "fence" (a reference that must never be booked).

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
    CosmosBatchOperationError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.domain.booking_record import Appointment, BookingRecord
from shared.domain.retention import booking_ttl, entry_ttl
from shared.ports.bookings import DayListItem, HoldOutcome, PlaceRefusal, StoredBooking
from shared.ports.site_operations import UnsettledAppointment


def _hold_key(reference: str) -> str:
    return f"r{reference.lower()}"


def _entry_id(reference: str, appointment: Appointment) -> str:
    return f"{reference}.{appointment.slot_id}"


_ROOM_LEFT = "FROM c WHERE c.booked < c.capacity AND c.status = 'open'"


def _take_place(reference: str, now: dt.datetime) -> tuple[list[dict[str, Any]], str]:
    """The conditional patch that takes one place in a slot for a reference: its operations and filter."""
    key = _hold_key(reference)
    return ([{"op": "incr", "path": "/booked", "value": 1},
             {"op": "set", "path": f"/holds/{key}", "value": now.isoformat()}],
            f"{_ROOM_LEFT} AND NOT IS_DEFINED(c.holds.{key})")


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


def appointment_entry_document(record: BookingRecord, appointment: Appointment, now: dt.datetime) -> dict[str, Any]:
    """The entry listing one of a booking's appointments in its site's day list (not the home one's first)."""
    return {"id": _entry_id(record.reference, appointment), "siteId": appointment.site_id, "type": "appointment",
            "reference": record.reference, "homeSiteId": record.home_site_id,
            "contact": record.contact.model_dump(mode="json"),
            "bookedAt": (record.confirmed_at or record.created_at).isoformat(),
            **_listing(appointment, _appointment_status(record, appointment)),
            "ttl": entry_ttl(appointment, now)}


class CosmosBookingRecords:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def create_holding(self, record: BookingRecord, now: dt.datetime) -> StoredBooking | PlaceRefusal:
        home = record.home_site_id
        # The booking first: a document already under its reference fails the batch before any place is taken.
        operations: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("create", (booking_document(record, now),), {})]
        places = [a for a in record.appointments if a.site_id == home]
        patch, _ = _take_place(record.reference, now)
        for appointment in places:
            # No "not held by this reference yet" here: the create before it already makes the batch happen
            # at most once per reference.
            operations.append(("patch", (appointment.slot_id, patch), {"filter_predicate": _ROOM_LEFT}))
        for appointment in record.separate_entries():
            if appointment.site_id == home:
                operations.append(("upsert", (appointment_entry_document(record, appointment, now),), {}))
        try:
            results = await self._container.execute_item_batch(operations, partition_key=home)
        except CosmosBatchOperationError as failed:
            index, status = failed.error_index, failed.status_code
            if index == 0 and status == 409:
                return "exists"
            if 0 < index <= len(places) and status in (404, 412):
                return await self._why_refused(places[index - 1].slot_id, home) if status == 412 else "missing"
            raise
        # The record just written is the stored one: reading it back through the model again would only cost CPU.
        return StoredBooking(record, results[0]["resourceBody"]["_etag"])

    async def _why_refused(self, slot_id: str, site_id: str) -> PlaceRefusal:
        """A place refused: full, or closed (as good as gone). One read tells, on this rare path only."""
        try:
            slot = await self._container.read_item(slot_id, partition_key=site_id)
        except CosmosResourceNotFoundError:
            return "missing"
        return "full" if slot.get("status") == "open" else "missing"

    async def fence(self, reference: str, home_site_id: str, now: dt.datetime) -> bool:
        try:
            # Kept long past any retry of the booking it stands for; the emulator ignores ttl.
            await self._container.create_item({"id": reference, "siteId": home_site_id, "type": "fence",
                                               "at": now.isoformat(), "ttl": 30 * 86_400})
        except CosmosResourceExistsError:
            return False
        return True

    async def fenced(self, reference: str, home_site_id: str) -> bool:
        try:
            doc = await self._container.read_item(reference, partition_key=home_site_id)
        except CosmosResourceNotFoundError:
            return False
        return bool(doc.get("type") == "fence")

    async def existing(self, keys: list[tuple[str, str]]) -> set[str]:
        if not keys:
            return set()
        # Read many: one request per partition key range, not one per booking.
        found = await self._container.read_items(items=keys)
        return {doc["id"] for doc in found if doc.get("type") == "booking"}

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
        await self._container.upsert_item(appointment_entry_document(record, appointment, _now()))

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
        patch, condition = _take_place(reference, now)
        try:
            await self._container.patch_item(slot_id, partition_key=site_id, patch_operations=patch,
                                             filter_predicate=condition)
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
