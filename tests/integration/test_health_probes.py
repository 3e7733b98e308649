"""The health probes against the real emulators: up when they answer, down when they do not."""

from __future__ import annotations

import pytest

from shared.adapters.azure_probes import CosmosProbe, StorageProbe
from shared.adapters.clients import Clients, get_clients
from shared.services.health import HealthService
from shared.settings import Settings
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.integration


async def test_probes_report_ok_against_running_emulators(provisioned: EmulatorEndpoints) -> None:
    clients = get_clients()
    report = await HealthService([CosmosProbe(clients), StorageProbe(clients)]).check()
    assert report.dependencies == {"cosmos": "ok", "storage": "ok"}


async def test_cosmos_probe_reports_unavailable_when_the_endpoint_is_down(
    provisioned: EmulatorEndpoints,
) -> None:
    settings = Settings(COSMOS_ENDPOINT="https://localhost:9", COSMOS_KEY=provisioned.cosmos_key,
                        COSMOS_CA_CERT=provisioned.cosmos_ca_cert,
                        AzureWebJobsStorage=provisioned.storage_connection_string)
    clients = Clients(settings)
    try:
        report = await HealthService([CosmosProbe(clients), StorageProbe(clients)], timeout_seconds=3).check()
    finally:
        await clients.close()
    assert report.dependencies == {"cosmos": "unavailable", "storage": "ok"}


async def test_cosmos_probe_refuses_a_certificate_it_cannot_verify(provisioned: EmulatorEndpoints) -> None:
    # Without the emulator's CA the client must not connect: TLS verification is on.
    settings = Settings(COSMOS_ENDPOINT=provisioned.cosmos_endpoint, COSMOS_KEY=provisioned.cosmos_key,
                        COSMOS_CA_CERT=None,
                        AzureWebJobsStorage=provisioned.storage_connection_string)
    clients = Clients(settings)
    try:
        report = await HealthService([CosmosProbe(clients)], timeout_seconds=3).check()
    finally:
        await clients.close()
    assert report.dependencies == {"cosmos": "unavailable"}
