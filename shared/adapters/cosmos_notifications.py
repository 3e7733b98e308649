"""The notification sender's Cosmos stores: delivery records, the STOP list, reminder scans, appointments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.domain.messages import Delivery
from shared.observability import pseudonym
from shared.ports.notifications import ListedAppointment

# Records outlive any redelivery by far; real Cosmos DB drops them after this (the emulator keeps them).
_RECORD_TTL_SECONDS = 90 * 24 * 3600


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _to_doc(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id, "type": "delivery", "channel": delivery.channel, "kind": delivery.kind,
        "reference": delivery.reference, "state": delivery.state, "generation": delivery.generation,
        "firstSent": _iso(delivery.first_sent), "updatedAt": _iso(delivery.updated_at),
        "messageId": delivery.message_id, "reason": delivery.reason, "ttl": _RECORD_TTL_SECONDS,
    }


def _from_doc(doc: dict[str, Any]) -> Delivery:
    return Delivery(
        id=doc["id"], channel=doc["channel"], kind=doc["kind"], reference=doc["reference"], state=doc["state"],
        generation=int(doc["generation"]), first_sent=dt.datetime.fromisoformat(doc["firstSent"]),
        updated_at=dt.datetime.fromisoformat(doc["updatedAt"]), message_id=doc.get("messageId"),
        reason=doc.get("reason"), etag=doc.get("_etag"))


class CosmosDeliveryStore:
    """Delivery records, one document each, partitioned by their own id: every access is a point operation."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def create(self, delivery: Delivery) -> bool:
        try:
            await self._container.create_item(_to_doc(delivery))
        except CosmosResourceExistsError:
            return False
        return True

    async def get(self, delivery_id: str) -> Delivery | None:
        try:
            doc = await self._container.read_item(delivery_id, partition_key=delivery_id)
        except CosmosResourceNotFoundError:
            return None
        return _from_doc(doc)

    async def save(self, delivery: Delivery) -> None:
        await self._container.upsert_item(_to_doc(delivery))


def opt_out_id(mobile: str) -> str:
    # A keyed hash: item URLs end in the id, and a number must not appear in one.
    return f"opt-out.{pseudonym(mobile, 'sms-opt-out')}"


class CosmosOptOutStore:
    """The STOP list: one document per number, kept (no ttl) until someone removes it."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def is_opted_out(self, mobile: str) -> bool:
        key = opt_out_id(mobile)
        try:
            await self._container.read_item(key, partition_key=key)
        except CosmosResourceNotFoundError:
            return False
        return True

    async def opt_out(self, mobile: str, now: dt.datetime, source: str) -> bool:
        # The number itself is kept in the body so that the list survives a change of hashing key.
        doc = {"id": opt_out_id(mobile), "type": "optOut", "mobile": mobile, "at": _iso(now), "source": source}
        try:
            await self._container.create_item(doc)
        except CosmosResourceExistsError:
            return False
        return True


class CosmosReminderScans:
    """How far each reminder rule's scan has reached: one small document per rule."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def last_scan(self, rule: str) -> dt.datetime | None:
        key = f"reminder-scan.{rule}"
        try:
            doc = await self._container.read_item(key, partition_key=key)
        except CosmosResourceNotFoundError:
            return None
        return dt.datetime.fromisoformat(doc["until"])

    async def record_scan(self, rule: str, until: dt.datetime) -> None:
        await self._container.upsert_item({"id": f"reminder-scan.{rule}", "type": "reminderScan",
                                           "until": _iso(until)})


def _bound(moment: dt.datetime) -> str:
    # Stored starts are whole seconds written by isoformat() in UTC; the bounds are written the same
    # way so that the string comparison below orders them as instants.
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


# Only the fields a message needs, never the booking record with the person in it.
_CONFIRMED_STARTING = (
    "SELECT c.id, c.siteId, c.reference, c.dose, c.slotId, c.start, c.status, c.siteName, c.sitePostcode, "
    "c.bookedAt, c.contact FROM c WHERE (c.type = 'appointment' OR c.type = 'booking') "
    "AND c.status = 'confirmed' AND c.start > @after AND c.start <= @until")


def _listed(doc: dict[str, Any]) -> ListedAppointment | None:
    if not doc.get("start") or not doc.get("slotId") or not doc.get("bookedAt"):
        return None  # a booking document whose appointments all live at other sites
    contact = doc.get("contact") or {}
    return ListedAppointment(
        doc_id=doc["id"], site_id=doc["siteId"], reference=doc["reference"], dose=int(doc["dose"]),
        slot_id=doc["slotId"], start=dt.datetime.fromisoformat(doc["start"]), status=doc["status"],
        site_name=doc["siteName"], site_postcode=doc["sitePostcode"],
        booked_at=dt.datetime.fromisoformat(doc["bookedAt"]), mobile=contact.get("mobile"),
        email=contact.get("email"))


class CosmosAppointmentListing:
    """Appointments as the bookings container lists them: a booking's home document and its entries elsewhere."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def confirmed_starting(self, after: dt.datetime, until: dt.datetime) -> list[ListedAppointment]:
        # Cross-partition, once per timer run: the one query of the reminder path.
        found = self._container.query_items(_CONFIRMED_STARTING, parameters=[{"name": "@after", "value": _bound(after)},
                                                               {"name": "@until", "value": _bound(until)}])
        listed = [_listed(doc) async for doc in found]
        return [item for item in listed if item is not None]

    async def get(self, site_id: str, doc_id: str) -> ListedAppointment | None:
        try:
            doc = await self._container.read_item(doc_id, partition_key=site_id)
        except CosmosResourceNotFoundError:
            return None
        return _listed(doc)


# A counter's name carries its day, so it is never used again after it; kept a little past that day.
_COUNTER_TTL_SECONDS = 2 * 24 * 3600


def text_counter_id(counter: str) -> str:
    # A keyed hash: the name holds a mobile number or a person's pseudonym.
    return f"text-count.{pseudonym(counter, 'text-count')}"


class CosmosTextCounters:
    """Daily text counts: one small document per counter, raised by a conditional patch (`n` below the
    limit), so instances sending at once can never count past it."""

    def __init__(self, container: ContainerProxy, attempts: int = 5) -> None:
        self._container = container
        self._attempts = attempts

    async def take(self, counter: str, limit: int) -> bool:
        key = text_counter_id(counter)
        for _ in range(self._attempts):
            try:
                await self._container.patch_item(
                    key, partition_key=key, patch_operations=[{"op": "incr", "path": "/n", "value": 1}],
                    filter_predicate=f"FROM c WHERE c.n < {int(limit)}")
            except CosmosAccessConditionFailedError:
                return False
            except CosmosResourceNotFoundError:
                if limit < 1:
                    return False
                try:
                    await self._container.create_item({"id": key, "type": "textCount", "n": 1,
                                                       "ttl": _COUNTER_TTL_SECONDS})
                except CosmosResourceExistsError:
                    continue  # another instance counted the first one: count on it
                return True
            else:
                return True
        raise RuntimeError("a text counter could not be raised")
