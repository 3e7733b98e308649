"""The booking events' Cosmos adapter against the emulator: the repair query's grace period, the mark on the
etag, quarantine; and the change feed the emulator now serves, read through azure-cosmos."""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.cosmos.aio import ContainerProxy

from shared import resources
from shared.adapters.clients import Clients, close_clients, get_clients
from shared.adapters.cosmos_booking_events import CosmosBookingOutbox
from shared.adapters.cosmos_bookings import booking_document
from shared.domain.booking_record import BookingRecord
from shared.ports.bookings import StoredBooking, UnreadableBooking
from tests.conftest import EmulatorEndpoints

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
async def clients(provisioned: EmulatorEndpoints) -> AsyncIterator[Clients]:
    yield get_clients()
    await close_clients()


def record(site_id: str, events: int = 1) -> BookingRecord:
    reference = uuid.uuid4().hex[:10].upper()
    start = NOW + dt.timedelta(days=3)
    appointment = {"dose": 1, "slotId": f"{site_id}.{start:%Y-%m-%d.%H%M}.PFIZER", "siteId": site_id, "start": start,
                   "localDate": start.date(), "product": "PFIZER", "siteName": "Feed Centre", "sitePostcode": "LS1 4AP"}
    return BookingRecord.model_validate({
        "reference": reference, "homeSiteId": site_id, "status": "confirmed", "appointments": [appointment],
        "person": {"nhsNumber": "9990000018", "givenName": "Ada", "familyName": "Feed", "dateOfBirth": "1960-05-05"},
        "contact": {"mobile": "+447700900123"}, "createdAt": NOW, "deadline": NOW + dt.timedelta(minutes=2),
        "confirmedAt": NOW, "outbox": [{"eventId": f"{reference}.{n}.confirmed", "type": "BookingConfirmed",
                                        "occurredAt": NOW} for n in range(events)]})


async def write(container: ContainerProxy, booking: BookingRecord) -> dict[str, Any]:
    document: dict[str, Any] = await container.create_item(booking_document(booking))
    return document


async def test_the_repair_query_finds_only_unmarked_bookings_older_than_the_grace_period(clients: Clients) -> None:
    container = clients.database().get_container_client(resources.BOOKINGS.name)
    outbox = CosmosBookingOutbox(container)
    site = f"F{uuid.uuid4().hex[:8]}"
    owing, marked = record(site), record(site)
    await write(container, owing)
    stored = outbox.decode(await write(container, marked))
    assert isinstance(stored, StoredBooking)
    assert await outbox.mark_sent(stored, NOW)

    mine = {owing.reference, marked.reference}
    recent = [s for s in await outbox.unsent_before(NOW - dt.timedelta(seconds=60), 1000)
              if isinstance(s, StoredBooking) and s.record.reference in mine]
    assert recent == []  # written just now: still the feed's, not the repair's
    later = [s for s in await outbox.unsent_before(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5), 1000)
             if isinstance(s, StoredBooking) and s.record.reference in mine]
    assert [s.record.reference for s in later] == [owing.reference]


async def test_a_mark_on_a_stale_etag_changes_nothing(clients: Clients) -> None:
    container = clients.database().get_container_client(resources.BOOKINGS.name)
    outbox = CosmosBookingOutbox(container)
    booking = record(f"F{uuid.uuid4().hex[:8]}")
    stale = outbox.decode(await write(container, booking))
    assert isinstance(stale, StoredBooking)
    newer = booking.model_copy(update={"outbox": [*booking.outbox, booking.outbox[0].model_copy(
        update={"event_id": f"{booking.reference}.9.cancelled", "type": "BookingCancelled"})]})
    await container.replace_item(booking.reference, booking_document(newer))  # a commit after the feed's read

    assert await outbox.mark_sent(stale, NOW) is False
    document = await container.read_item(booking.reference, partition_key=booking.home_site_id)
    assert document["outboxPending"] is True and len(document["booking"]["outbox"]) == 2


async def test_a_quarantined_document_is_skipped_by_the_feed_and_the_repair_query(clients: Clients) -> None:
    container = clients.database().get_container_client(resources.BOOKINGS.name)
    outbox = CosmosBookingOutbox(container)
    site = f"F{uuid.uuid4().hex[:8]}"
    broken = {**booking_document(record(site)), "id": f"BROKEN{uuid.uuid4().hex[:6]}", "booking": {"reference": 1}}
    written = await container.create_item(broken)
    unreadable = outbox.decode(written)
    assert isinstance(unreadable, UnreadableBooking) and unreadable.partition == site
    assert "Ada" not in unreadable.reason

    await outbox.quarantine(unreadable)
    after = await container.read_item(broken["id"], partition_key=site)
    assert after["quarantined"]["reason"] == unreadable.reason
    assert outbox.decode(after) is None
    found = await outbox.unsent_before(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5), 1000)
    assert broken["id"] not in [f.document_id for f in found if isinstance(f, UnreadableBooking)]


async def test_the_emulator_serves_the_change_feed_in_order_from_a_continuation(clients: Clients) -> None:
    container = clients.database().get_container_client(resources.BOOKINGS.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        start = container.query_items_change_feed(partition_key_range_id="0", start_time="Now").by_page()
        with pytest.raises(StopAsyncIteration):
            await start.__anext__()
    now = container.client_connection.last_response_headers["etag"]
    site = f"F{uuid.uuid4().hex[:8]}"
    first, second = record(site), record(site)
    await write(container, first)
    await write(container, second)
    await container.replace_item(first.reference, booking_document(first))  # first changes again: now last

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pages = container.query_items_change_feed(partition_key_range_id="0", continuation=now).by_page()
    seen = [d["id"] async for d in await pages.__anext__() if d["siteId"] == site]
    assert seen == [second.reference, first.reference]  # latest version only, in the order of last change
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        after = container.query_items_change_feed(partition_key_range_id="0",
                                                  continuation=pages.continuation_token).by_page()  # type: ignore[attr-defined]
        with pytest.raises(StopAsyncIteration):
            await after.__anext__()
