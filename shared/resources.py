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
# Slot documents (type "slot") live in the bookings container, beside their site's bookings, so that a
# booking and the places it takes are one transactional batch in one partition (docs/bookings.md).
SLOTS = BOOKINGS
# Small documents shared by every instance: the campaign policy, the waiting-room settings.
CONFIG = CosmosContainer("config", "/id")
# Notifications: one record per message and channel, the SMS opt-out list, reminder scan marks.
DELIVERIES = CosmosContainer("deliveries", "/id")
# The waiting room: its admission state, lapsed sets, join and poll journals (a partition per
# minute of writing), admissions used. See docs/waiting-room.md.
WAITING_ROOM = CosmosContainer("waiting-room", "/pk")
# GP practices: each practice's uploads (with their receipts) and invitations. See docs/gp-practices.md.
GP = CosmosContainer("gp", "/odsCode")
# Site operations (docs/site-operations.md): one record per dose given, in the site's partition (what the
# NIMS exporter reads), and the audit trail of staff actions, a partition per site and day.
VACCINATIONS = CosmosContainer("vaccinations", "/siteId")
AUDIT = CosmosContainer("audit", "/pk")
# The NIMS exchange (docs/nims.md): the ledger of outbound batches written and inbound files applied.
NIMS = CosmosContainer("nims", "/pk")
# The operator dashboard's counters (docs/dashboard.md): a partition per kind and day, a document per hour or day.
DASHBOARD = CosmosContainer("dashboard", "/pk")

# The change feed's leases: where the bookings trigger records how far it has read (docs/events.md). The
# Functions host requires /id as its partition key.
LEASES = CosmosContainer("leases", "/id")

COSMOS_CONTAINERS: tuple[CosmosContainer, ...] = (PATIENTS, SITES, BOOKINGS, CONFIG, DELIVERIES, WAITING_ROOM, GP,
                                                   VACCINATIONS, AUDIT, NIMS, DASHBOARD, LEASES)

# Queues. The Functions host adds "<queue>-poison" for each triggered queue itself.
QUEUE_BOOKING_EVENTS = "booking-events"
QUEUE_WAITING_ROOM_JOINS = "waiting-room-joins"
# Reminders due, queued by the reminder timer so that every instance shares the sending.
QUEUE_REMINDERS = "reminders"
# Invitation texts owed by a GP practice's invitation run, shared out between instances.
QUEUE_GP_INVITATIONS = "gp-invitations"
QUEUES: tuple[str, ...] = (QUEUE_BOOKING_EVENTS, QUEUE_WAITING_ROOM_JOINS, QUEUE_REMINDERS, QUEUE_GP_INVITATIONS)

BLOB_GP_UPLOADS = "gp-uploads"
BLOB_GP_REPORTS = "gp-reports"
BLOB_NIMS_INBOUND = "nims-inbound"
BLOB_NIMS_OUTBOUND = "nims-outbound"
BLOB_NIMS_INBOUND_REPORTS = "nims-inbound-reports"
BLOB_CONTAINERS: tuple[str, ...] = (BLOB_GP_UPLOADS, BLOB_GP_REPORTS, BLOB_NIMS_INBOUND, BLOB_NIMS_OUTBOUND,
                                    BLOB_NIMS_INBOUND_REPORTS)
