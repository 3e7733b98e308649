"""The composition root: each use case built once per process (event loop) with its adapters."""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from functools import cached_property

from azure.cosmos.aio import ContainerProxy

from shared import resources
from shared.adapters.clock import SystemClock
from shared.adapters.cosmos_bookings import CosmosBookingRecords, CosmosSiteCatalog, CosmosSlotHolds
from shared.adapters.cosmos_config import CosmosPolicyStore
from shared.adapters.cosmos_patients import CosmosPatientStore
from shared.adapters.probes import CosmosProbe, StorageProbe
from shared.adapters.queue_events import QueueEventPublisher
from shared.clients import Clients, get_clients
from shared.domain.throttling import MatchLockRule
from shared.ports import Clock
from shared.services.booking import BookingService
from shared.services.eligibility import EligibilityService
from shared.services.health import HealthService
from shared.services.outbox import OutboxRelay
from shared.services.policy import PolicyService
from shared.services.register_import import RegisterImportService
from shared.services.throttle import ClientThrottle


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
        return PolicyService(store, self.clock, self.settings.policy_refresh_seconds)

    @cached_property
    def eligibility(self) -> EligibilityService:
        s = self.settings
        throttle = ClientThrottle(s.eligibility_client_burst, s.eligibility_client_per_second)
        rule = MatchLockRule(max_failures=s.match_lock_max_failures, window=dt.timedelta(minutes=s.match_lock_minutes),
                             lock=dt.timedelta(minutes=s.match_lock_minutes))
        return EligibilityService(self.patient_store, self.policy, self.clock, throttle, rule)

    @cached_property
    def register_import(self) -> RegisterImportService:
        return RegisterImportService(self.patient_store, self.clock)

    def _container(self, container: resources.CosmosContainer) -> ContainerProxy:
        return self.clients.database().get_container_client(container.name)

    @cached_property
    def booking_records(self) -> CosmosBookingRecords:
        return CosmosBookingRecords(self._container(resources.BOOKINGS))

    @cached_property
    def site_catalog(self) -> CosmosSiteCatalog:
        return CosmosSiteCatalog(self._container(resources.SITES))

    @cached_property
    def bookings(self) -> BookingService:
        return BookingService(
            self.patient_store, self.booking_records, CosmosSlotHolds(self._container(resources.SITES)),
            self.site_catalog, self.policy, self.clock, reference_key=self.settings.pii_hash_key.encode(),
            saga_timeout=dt.timedelta(seconds=self.settings.booking_saga_timeout_seconds))

    @cached_property
    def outbox(self) -> OutboxRelay:
        return OutboxRelay(self.booking_records, QueueEventPublisher(self.clients))


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Services] = weakref.WeakKeyDictionary()


def services() -> Services:
    """The running event loop's use cases (one loop per Functions worker process)."""
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is None or found.clients is not get_clients():
        found = Services(get_clients())
        _by_loop[loop] = found
    return found
