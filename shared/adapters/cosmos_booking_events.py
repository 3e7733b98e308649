"""The events booking documents owe, in Cosmos DB: decoding changed documents, marking, quarantine, repair query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceNotFoundError
from pydantic import ValidationError

from shared.domain.booking_record import BookingRecord
from shared.ports.bookings import StoredBooking, UnreadableBooking

# Bookings whose events are unmarked and that nobody changed since @before (epoch seconds): the repair
# timer's work. Indexed paths only (type, outboxPending, _ts); pages are read only as far as needed.
_UNSENT = ("SELECT * FROM c WHERE c.type = 'booking' AND c.outboxPending = true AND c._ts < @before "
           "AND NOT IS_DEFINED(c.quarantined)")


class CosmosBookingOutbox:
    def __init__(self, container: ContainerProxy, partition_path: str = "/siteId") -> None:
        self._container = container
        self._partition_field = partition_path.strip("/")

    def decode(self, document: Mapping[str, Any]) -> StoredBooking | UnreadableBooking | None:
        # The container holds appointment entries (and may hold slots): only booking documents owe events.
        if document.get("type") != "booking" or "quarantined" in document:
            return None
        try:
            return StoredBooking(BookingRecord.model_validate(document["booking"]), str(document["_etag"]))
        except (ValidationError, KeyError, TypeError) as error:
            return UnreadableBooking(str(document.get("id", "?")), str(document.get(self._partition_field, "?")),
                                     type(error).__name__)

    async def unsent_before(self, before: dt.datetime, limit: int) -> list[StoredBooking | UnreadableBooking]:
        found: list[StoredBooking | UnreadableBooking] = []
        query = self._container.query_items(_UNSENT, parameters=[{"name": "@before", "value": int(before.timestamp())}])
        async for document in query:
            decoded = self.decode(document)
            if decoded is not None:
                found.append(decoded)
            if len(found) >= limit:
                break  # stop reading pages: the next run picks up the rest
        return found

    async def mark_sent(self, stored: StoredBooking, sent_at: dt.datetime) -> bool:
        record = stored.record
        try:
            # Only if unchanged: a commit since may have added an event that clearing the outbox would lose.
            await self._container.patch_item(
                record.reference, partition_key=record.home_site_id,
                patch_operations=[{"op": "set", "path": "/outboxPending", "value": False},
                                  {"op": "set", "path": "/booking/outbox", "value": []},
                                  # When the events left: operators' answer to "was it sent", and the bench's.
                                  {"op": "set", "path": "/eventsSentAt", "value": sent_at.isoformat()}],
                etag=stored.etag, match_condition=MatchConditions.IfNotModified)
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return False
        return True

    async def quarantine(self, unreadable: UnreadableBooking) -> None:
        try:
            await self._container.patch_item(
                unreadable.document_id, partition_key=unreadable.partition,
                patch_operations=[{"op": "set", "path": "/quarantined",
                                   "value": {"reason": unreadable.reason, "at": dt.datetime.now(dt.UTC).isoformat()}}])
        except CosmosResourceNotFoundError:
            return  # gone meanwhile: nothing left to set aside
