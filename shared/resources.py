"""The one declaration of every Cosmos container, queue and blob container the app uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CosmosContainer:
    """A container and its partition key path."""

    name: str
    partition_key: str


PATIENTS = CosmosContainer("patients", "/nhsNumber")
SITES = CosmosContainer("sites", "/siteId")
BOOKINGS = CosmosContainer("bookings", "/siteId")
# Small documents shared by every instance: the campaign policy, the waiting-room settings.
CONFIG = CosmosContainer("config", "/id")
# Notifications: one record per message and channel, the SMS opt-out list, reminder scan marks.
DELIVERIES = CosmosContainer("deliveries", "/id")
# The waiting room: its admission state, lapsed sets, join and poll journals (a partition per
# minute of writing), admissions used. See docs/waiting-room.md.
WAITING_ROOM = CosmosContainer("waiting-room", "/pk")

COSMOS_CONTAINERS: tuple[CosmosContainer, ...] = (PATIENTS, SITES, BOOKINGS, CONFIG, DELIVERIES, WAITING_ROOM)

# Queues. The Functions host adds "<queue>-poison" for each triggered queue itself.
QUEUE_BOOKING_EVENTS = "booking-events"
QUEUE_WAITING_ROOM_JOINS = "waiting-room-joins"
# Reminders due, queued by the reminder timer so that every instance shares the sending.
QUEUE_REMINDERS = "reminders"
QUEUES: tuple[str, ...] = (QUEUE_BOOKING_EVENTS, QUEUE_WAITING_ROOM_JOINS, QUEUE_REMINDERS)

BLOB_GP_UPLOADS = "gp-uploads"
BLOB_GP_REPORTS = "gp-reports"
BLOB_NIMS_INBOUND = "nims-inbound"
BLOB_NIMS_OUTBOUND = "nims-outbound"
BLOB_CONTAINERS: tuple[str, ...] = (BLOB_GP_UPLOADS, BLOB_GP_REPORTS, BLOB_NIMS_INBOUND, BLOB_NIMS_OUTBOUND)
