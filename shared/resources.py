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

COSMOS_CONTAINERS: tuple[CosmosContainer, ...] = (PATIENTS, SITES, BOOKINGS, CONFIG)

# Queues. The Functions host adds "<queue>-poison" for each triggered queue itself.
QUEUE_BOOKING_EVENTS = "booking-events"
QUEUE_WAITING_ROOM_JOINS = "waiting-room-joins"
QUEUES: tuple[str, ...] = (QUEUE_BOOKING_EVENTS, QUEUE_WAITING_ROOM_JOINS)

BLOB_GP_UPLOADS = "gp-uploads"
BLOB_GP_REPORTS = "gp-reports"
BLOB_NIMS_INBOUND = "nims-inbound"
BLOB_NIMS_OUTBOUND = "nims-outbound"
BLOB_CONTAINERS: tuple[str, ...] = (BLOB_GP_UPLOADS, BLOB_GP_REPORTS, BLOB_NIMS_INBOUND, BLOB_NIMS_OUTBOUND)
