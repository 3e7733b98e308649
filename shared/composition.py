"""The composition root: each use case built once per process (event loop) with its adapters."""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from functools import cached_property
from typing import TYPE_CHECKING

from azure.cosmos.aio import ContainerProxy

from shared import resources
from shared.adapters.azure_probes import CosmosProbe, StorageProbe
from shared.adapters.clients import Clients, get_clients
from shared.adapters.cosmos_booking_events import CosmosBookingOutbox
from shared.adapters.cosmos_bookings import CosmosBookingRecords, CosmosSlotHolds
from shared.adapters.cosmos_patients import CosmosPatientStore
from shared.adapters.cosmos_policy import CosmosPolicyStore
from shared.adapters.cosmos_sites import CosmosIdempotencyKeys, CosmosSiteStore, CosmosStaffDirectory
from shared.adapters.cosmos_waiting_room import CosmosWaitingRoomStore
from shared.adapters.offline_postcodes import OfflinePostcodeLocator
from shared.adapters.queue_events import QueueEventPublisher, ServiceBusEventPublisher
from shared.adapters.queue_waiting_room import StorageQueueJoinPublisher
from shared.adapters.system_clock import SystemClock
from shared.domain.throttling import MatchLockRule
from shared.domain.waiting_room import ClaimSigner
from shared.ports.bookings import EventPublisher
from shared.ports.common import Clock
from shared.services.audit import AuditService
from shared.services.booking import BookingService
from shared.services.eligibility import EligibilityService
from shared.services.health import HealthService
from shared.services.notifications import NotificationService
from shared.services.outbox import BookingEventFeed, EventDispatcher, OutboxRelay
from shared.services.poison import PoisonQueueMonitor
from shared.services.policy import PolicyService
from shared.services.register_import import RegisterImportService
from shared.services.sites.access import StaffAccess
from shared.services.sites.admin import SiteAdminService
from shared.services.sites.day_list import SiteAppointmentsService
from shared.services.sites.index import NextAvailableDates, SiteIndex
from shared.services.sites.search import SiteSearchService
from shared.services.throttle import ClientThrottle
from shared.services.waiting_room import AdmissionTimer, JoinRecorder, WaitingRoomService

if TYPE_CHECKING:
    from shared.adapters.blob_gp_files import BlobReportFiles, BlobUploadFiles
    from shared.adapters.cosmos_gp import CosmosGpStore
    from shared.services.dashboard import DashboardCounters, DashboardService
    from shared.services.gp.invitations import GpInvitationService
    from shared.services.gp.reading import ListPass
    from shared.services.gp.uploads import GpUploadService
    from shared.services.nims_export import NimsExporter
    from shared.services.nims_inbound import NimsInbound
    from shared.services.session_moves import SessionMoveService
    from shared.services.site_operations import SiteFollowUp, SiteOperationsService


class Services:
    """Use cases of one event loop. Cached, because some hold state: the policy cache, throttles."""

    def __init__(self, clients: Clients, clock: Clock | None = None) -> None:
        self.clients = clients
        self.settings = clients.settings
        self.clock: Clock = clock or SystemClock()

    @cached_property
    def health(self) -> HealthService:
        return HealthService([CosmosProbe(self.clients), StorageProbe(self.clients)])

    @cached_property
    def patient_store(self) -> CosmosPatientStore:
        return CosmosPatientStore(self.clients.database().get_container_client(resources.PATIENTS.name))

    @cached_property
    def policy(self) -> PolicyService:
        store = CosmosPolicyStore(self.clients.database().get_container_client(resources.CONFIG.name))
        return PolicyService(store, self.clock, self.settings.policy_refresh_seconds, audit=self.audit)

    @cached_property
    def _lock_rule(self) -> MatchLockRule:
        s = self.settings
        return MatchLockRule(max_failures=s.match_lock_max_failures, window=dt.timedelta(minutes=s.match_lock_minutes),
                             lock=dt.timedelta(minutes=s.match_lock_minutes))

    @cached_property
    def eligibility(self) -> EligibilityService:
        s = self.settings
        throttle = ClientThrottle(s.eligibility_client_burst, s.eligibility_client_per_second)
        return EligibilityService(self.patient_store, self.policy, self.clock, throttle, self._lock_rule)

    @cached_property
    def register_import(self) -> RegisterImportService:
        return RegisterImportService(self.patient_store, self.clock, audit=self.audit)

    def _container(self, container: resources.CosmosContainer) -> ContainerProxy:
        return self.clients.database().get_container_client(container.name)

    @cached_property
    def booking_records(self) -> CosmosBookingRecords:
        return CosmosBookingRecords(self._container(resources.BOOKINGS))

    @cached_property
    def bookings(self) -> BookingService:
        return BookingService(
            self.patient_store, self.booking_records, CosmosSlotHolds(self._container(resources.SLOTS)),
            self.site_index, self.policy, self.clock, reference_key=self.settings.pii_hash_key.encode(),
            saga_timeout=dt.timedelta(seconds=self.settings.booking_saga_timeout_seconds),
            admission=self.waiting_room, lock_rule=self._lock_rule, follow_up=self.site_follow_up)

    # Booking events (docs/events.md): the change-feed handler, and the outbox timer as its repair path.

    @cached_property
    def booking_events(self) -> EventDispatcher:
        publisher: EventPublisher = (
            ServiceBusEventPublisher(self.clients.servicebus()) if self.settings.messaging == "servicebus"
            else QueueEventPublisher(self.clients))
        # Observers of the published events (the dashboard's counters) are added to `.observers`.
        dispatcher = EventDispatcher(CosmosBookingOutbox(self._container(resources.BOOKINGS)), publisher,
                                     self.clock, concurrency=self.settings.event_publish_concurrency)
        # Issue 14: the operator dashboard counts every booking event published (docs/dashboard.md).
        dispatcher.observers.append(self.dashboard_counters.record)
        return dispatcher

    @cached_property
    def event_feed(self) -> BookingEventFeed:
        return BookingEventFeed(CosmosBookingOutbox(self._container(resources.BOOKINGS)), self.booking_events)

    @cached_property
    def outbox(self) -> OutboxRelay:
        return OutboxRelay(CosmosBookingOutbox(self._container(resources.BOOKINGS)), self.booking_events, self.clock,
                           grace=dt.timedelta(seconds=self.settings.outbox_repair_grace_seconds))

    # Waiting room: the citizen routes and the admission gate, the joins queue, the admission timer.

    def _waiting_room_store(self) -> CosmosWaitingRoomStore:
        return CosmosWaitingRoomStore(self._container(resources.CONFIG), self._container(resources.WAITING_ROOM))

    @cached_property
    def waiting_room(self) -> WaitingRoomService:
        s = self.settings
        previous = (s.waiting_room_previous_signing_key.encode(),) if s.waiting_room_previous_signing_key else ()
        return WaitingRoomService(
            self._waiting_room_store(), StorageQueueJoinPublisher(self.clients), self.clock,
            ClaimSigner(s.waiting_room_signing_key.encode(), previous),
            refresh_seconds=s.waiting_room_refresh_seconds,
            token_ttl=dt.timedelta(minutes=s.waiting_room_token_minutes),
            ticket_ttl=dt.timedelta(hours=s.waiting_room_ticket_hours),
            report_seconds=s.waiting_room_report_seconds, join_batch_seconds=s.waiting_room_join_batch_ms / 1000,
            throttle=ClientThrottle(s.waiting_room_join_burst, s.waiting_room_join_per_second, shared=(
                s.waiting_room_join_shared_burst, s.waiting_room_join_shared_per_second)), audit=self.audit)

    @cached_property
    def waiting_room_joins(self) -> JoinRecorder:
        return JoinRecorder(self._waiting_room_store(), self.clock)

    @cached_property
    def waiting_room_admission(self) -> AdmissionTimer:
        return AdmissionTimer(self._waiting_room_store(), self.clock)

    @cached_property
    def poison_queues(self) -> PoisonQueueMonitor:
        from shared.adapters.queue_poison import PoisonQueues

        return PoisonQueueMonitor(PoisonQueues(self.clients.queues()), resources.QUEUES)

    # The operator dashboard (docs/dashboard.md): counters fed by booking events, sessions and texts; its view.

    @cached_property
    def dashboard_counters(self) -> DashboardCounters:
        from shared.adapters.cosmos_dashboard import CosmosCounterStore
        from shared.services.dashboard import DashboardCounters

        return DashboardCounters(CosmosCounterStore(self._container(resources.DASHBOARD)), self.clock)

    @cached_property
    def dashboard(self) -> DashboardService:
        from shared.adapters.cosmos_dashboard import CosmosCounterStore
        from shared.adapters.queue_depths import StorageQueueDepths, UnknownQueueDepths
        from shared.ports.dashboard import QueueDepths
        from shared.services.dashboard import DashboardService

        depths: QueueDepths = (UnknownQueueDepths() if self.settings.messaging == "servicebus"
                               else StorageQueueDepths(self.clients.queues()))
        # Every queue but the joins carries work that owes texts: booking events, reminders, invitations.
        text_queues = [q for q in resources.QUEUES if q != resources.QUEUE_WAITING_ROOM_JOINS]
        return DashboardService(CosmosCounterStore(self._container(resources.DASHBOARD)), self.waiting_room,
                                self.poison_queues, depths, text_queues, self.clock)

    # Notifications: texts and emails for booking events and reminders (docs/notifications.md).

    @cached_property
    def notifications(self) -> NotificationService:
        from shared.adapters.acs_messages import AcsEmailSender, AcsSmsSender
        from shared.adapters.cosmos_notifications import (
            CosmosAppointmentListing,
            CosmosDeliveryStore,
            CosmosOptOutStore,
            CosmosReminderScans,
            CosmosTextCounters,
        )
        from shared.adapters.queue_reminders import ServiceBusReminderQueue, StorageReminderQueue
        from shared.domain.messages import TextLimits
        from shared.ports.notifications import ReminderQueue
        from shared.services.notifications import NotificationConfig, SendRate

        s = self.settings
        deliveries = self._container(resources.DELIVERIES)
        queue: ReminderQueue = (
            ServiceBusReminderQueue(self.clients.servicebus(), resources.QUEUE_REMINDERS)
            if s.messaging == "servicebus" else StorageReminderQueue(self.clients.queues(), resources.QUEUE_REMINDERS))
        config = NotificationConfig(
            site_url=s.booking_site_url, email_enabled=bool(s.email_from), attempts=s.send_attempts,
            retry_base_seconds=s.send_retry_base_seconds, retry_max_seconds=s.send_retry_max_seconds,
            repeatability_window=dt.timedelta(seconds=s.acs_repeatability_window_seconds))
        return NotificationService(
            CosmosDeliveryStore(deliveries), CosmosOptOutStore(deliveries),
            AcsSmsSender(self.clients.sms(), s.sms_from),
            AcsEmailSender(self.clients.email(), s.email_from) if s.email_from else None,
            CosmosAppointmentListing(self._container(resources.BOOKINGS)), queue, CosmosReminderScans(deliveries),
            self.clock, config,
            {"sms": SendRate(s.sms_sends_per_minute), "email": SendRate(s.email_sends_per_minute)},
            counters=CosmosTextCounters(deliveries),
            limits=TextLimits(s.sms_limit_per_booking, s.sms_limit_per_person, s.sms_limit_per_recipient),
            dashboard=self.dashboard_counters)

    # Sites: registration, sessions and slots, search, staff assignments, the day list (docs/sites.md).

    @cached_property
    def site_store(self) -> CosmosSiteStore:
        return CosmosSiteStore(self._container(resources.SITES), self._container(resources.SLOTS),
                               self.settings.slot_write_concurrency)

    @cached_property
    def site_index(self) -> SiteIndex:
        return SiteIndex(self.site_store, self.settings.site_index_refresh_seconds, self.clock)

    @cached_property
    def site_availability(self) -> NextAvailableDates:
        return NextAvailableDates(self.site_store, self.settings.site_availability_seconds, self.clock)

    @cached_property
    def postcode_locator(self) -> OfflinePostcodeLocator:
        return OfflinePostcodeLocator()

    @cached_property
    def staff_access(self) -> StaffAccess:
        return StaffAccess(CosmosStaffDirectory(self._container(resources.CONFIG)), self.site_index, self.clock,
                           audit=self.audit)

    @cached_property
    def site_admin(self) -> SiteAdminService:
        # The booking service cancels, with notice, the bookings of a session cancelled with them.
        return SiteAdminService(
            self.site_store, self.site_index, self.site_availability, self.staff_access, self.postcode_locator,
            self.policy, CosmosIdempotencyKeys(self._container(resources.CONFIG)), self.bookings, self.clock,
            audit=self.audit, places=self.dashboard_counters)

    @cached_property
    def site_search(self) -> SiteSearchService:
        return SiteSearchService(self.site_store, self.site_index, self.site_availability, self.postcode_locator,
                                 self.clock, self.settings.slot_listing_cache_seconds)

    @cached_property
    def site_appointments(self) -> SiteAppointmentsService:
        return SiteAppointmentsService(self.booking_records, self.site_index, self.staff_access, self.clock)

    # GP practices: patient-list uploads, the register check, invitations (docs/gp-practices.md).

    @cached_property
    def gp_list_pass(self) -> ListPass:
        from shared.adapters.cosmos_gp import CosmosRegisterBatch
        from shared.observability import pseudonym
        from shared.services.gp.reading import ListPass

        return ListPass(self._gp_uploads_files(), CosmosRegisterBatch(self._container(resources.PATIENTS)),
                        self.gp_store, self.policy, self.clock, lambda number: pseudonym(number, "gp-invite"))

    @cached_property
    def gp_store(self) -> CosmosGpStore:
        from shared.adapters.cosmos_gp import CosmosGpStore

        return CosmosGpStore(self._container(resources.GP))

    def _gp_uploads_files(self) -> BlobUploadFiles:
        from shared.adapters.blob_gp_files import BlobUploadFiles

        return BlobUploadFiles(self.clients.blobs().get_container_client(resources.BLOB_GP_UPLOADS))

    def _gp_reports(self) -> BlobReportFiles:
        from shared.adapters.blob_gp_files import BlobReportFiles

        return BlobReportFiles(self.clients.blobs().get_container_client(resources.BLOB_GP_REPORTS))

    @cached_property
    def gp_uploads(self) -> GpUploadService:
        from shared.services.gp.uploads import GpUploadService

        return GpUploadService(self._gp_uploads_files(), self._gp_reports(), self.gp_store, self.gp_list_pass,
                               self.staff_access, self.clock)

    @cached_property
    def gp_invitations(self) -> GpInvitationService:
        from shared.adapters.queue_gp_invitations import StorageInvitationTexts
        from shared.domain.invitations import InvitationSigner
        from shared.services.gp.invitations import GpInvitationService, InvitationSettings

        s = self.settings
        return GpInvitationService(
            self.gp_store, self._gp_uploads_files(), self.site_store, self.site_index, self.staff_access,
            self.gp_list_pass, self._gp_reports(),
            StorageInvitationTexts(self.clients.queues(), resources.QUEUE_GP_INVITATIONS), self.notifications,
            self.bookings, InvitationSigner(s.gp_invite_signing_key.encode()), self.clock,
            InvitationSettings(factor=s.gp_invite_factor, days=s.gp_invite_days, site_url=s.booking_site_url))

    # Site operations: check-in, doses, did-not-attend, session moves, phone bookings, the audit trail
    # (docs/site-operations.md).

    @cached_property
    def audit(self) -> AuditService:
        from shared.adapters.cosmos_audit import CosmosAuditTrail

        return AuditService(CosmosAuditTrail(self._container(resources.AUDIT)), self.clock)

    @cached_property
    def site_follow_up(self) -> SiteFollowUp:
        from shared.adapters.cosmos_audit import CosmosAuditTrail
        from shared.adapters.cosmos_vaccinations import CosmosVaccinationRecords
        from shared.services.site_operations import SiteFollowUp

        return SiteFollowUp(CosmosVaccinationRecords(self._container(resources.VACCINATIONS)), self.patient_store,
                            CosmosAuditTrail(self._container(resources.AUDIT)))

    @cached_property
    def agent_bookings(self) -> BookingService:
        """Bookings made by contact-centre staff for a caller: the same saga, no waiting room."""
        return BookingService(
            self.patient_store, self.booking_records, CosmosSlotHolds(self._container(resources.SLOTS)),
            self.site_index, self.policy, self.clock, reference_key=self.settings.pii_hash_key.encode(),
            saga_timeout=dt.timedelta(seconds=self.settings.booking_saga_timeout_seconds),
            admission=None, lock_rule=self._lock_rule, follow_up=self.site_follow_up)

    @cached_property
    def site_operations(self) -> SiteOperationsService:
        from shared.services.site_operations import SiteOperationsService

        return SiteOperationsService(self.bookings, self.booking_records, self.patient_store, self.site_index,
                                     self.policy, self.staff_access, self.booking_records, self.clock,
                                     key=self.settings.pii_hash_key.encode(),
                                     keys=CosmosIdempotencyKeys(self._container(resources.CONFIG)))

    @cached_property
    def session_moves(self) -> SessionMoveService:
        from shared.adapters.cosmos_session_moves import CosmosSessionMoveJournals
        from shared.services.session_moves import SessionMoveService

        return SessionMoveService(
            self.site_store, CosmosSessionMoveJournals(self._container(resources.SITES)), self.staff_access,
            self.site_admin, self.bookings, self.booking_records, CosmosSlotHolds(self._container(resources.SLOTS)),
            self.booking_records, self.patient_store, self.clock, audit=self.audit)


    # The NIMS exchange: vaccinations out as FHIR, register files in, reconciliation and repair (docs/nims.md).

    @cached_property
    def nims_export(self) -> NimsExporter:
        from shared.adapters.blob_nims import BlobOutboundFiles
        from shared.adapters.cosmos_nims import CosmosExportQueue, CosmosNimsLedger
        from shared.services.nims_export import ExportSettings, NimsExporter

        s = self.settings
        return NimsExporter(
            CosmosExportQueue(self._container(resources.VACCINATIONS)),
            CosmosNimsLedger(self._container(resources.NIMS)),
            BlobOutboundFiles(self.clients.blobs().get_container_client(resources.BLOB_NIMS_OUTBOUND)), self.clock,
            ExportSettings(batch_size=s.nims_export_batch_size, lease=dt.timedelta(seconds=s.nims_export_lease_seconds),
                           run_seconds=s.nims_run_seconds))

    @cached_property
    def nims_inbound(self) -> NimsInbound:
        from shared.adapters.blob_nims import BlobInboundFiles, BlobInboundReports
        from shared.adapters.cosmos_nims import CosmosNimsLedger, CosmosRegisterPeople, CosmosSlotCounters
        from shared.services.nims_inbound import InboundSettings, NimsInbound
        from shared.services.nims_reconcile import RegisterReconciler, SlotRecount

        s, blobs = self.settings, self.clients.blobs()
        return NimsInbound(
            BlobInboundFiles(blobs.get_container_client(resources.BLOB_NIMS_INBOUND)),
            BlobInboundReports(blobs.get_container_client(resources.BLOB_NIMS_INBOUND_REPORTS)),
            CosmosNimsLedger(self._container(resources.NIMS)), self.register_import,
            CosmosRegisterPeople(self._container(resources.PATIENTS)), self.patient_store,
            RegisterReconciler(self.booking_records, self.bookings, self.policy, self.clock),
            SlotRecount(CosmosSlotCounters(self._container(resources.SLOTS)), self.clock,
                        s.nims_recount_days_before, s.nims_recount_days_after),
            self.clock, s.pii_hash_key.encode(),
            InboundSettings(lines_per_batch=s.nims_inbound_batch_lines, run_seconds=s.nims_run_seconds))


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Services] = weakref.WeakKeyDictionary()


def services() -> Services:
    """The running event loop's use cases (one loop per Functions worker process)."""
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is None or found.clients is not get_clients():
        found = Services(get_clients())
        _by_loop[loop] = found
    return found
