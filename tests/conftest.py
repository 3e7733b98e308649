"""Shared fixtures: emulators started once per test session on free ports, stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.launch import start_emulators
from shared.settings import reset_settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class EmulatorEndpoints:
    """Where this test session's emulators answer, as the app's settings name them."""

    storage_connection_string: str
    cosmos_endpoint: str
    cosmos_key: str
    cosmos_ca_cert: str

    def environment(self) -> dict[str, str]:
        return {
            "AzureWebJobsStorage": self.storage_connection_string,
            "COSMOS_ENDPOINT": self.cosmos_endpoint,
            "COSMOS__accountEndpoint": self.cosmos_endpoint,  # the Cosmos DB trigger's connection
            "COSMOS_KEY": self.cosmos_key,
            "COSMOS_CA_CERT": self.cosmos_ca_cert,
            "COSMOS_DATABASE": "vaccination-tests",
        }


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorEndpoints]:
    """Azurite (in memory) and the Cosmos emulator for this session, with the app's env pointed at them."""
    started = start_emulators(tmp_path_factory.mktemp("emulator-logs"), database="vaccination-tests")
    try:
        env = started.environment
        endpoints = EmulatorEndpoints(
            storage_connection_string=env["AzureWebJobsStorage"],
            cosmos_endpoint=env["COSMOS_ENDPOINT"],
            cosmos_key=env["COSMOS_KEY"],
            cosmos_ca_cert=env["COSMOS_CA_CERT"],
        )
        saved = {key: os.environ.get(key) for key in endpoints.environment()}
        os.environ.update(endpoints.environment())
        reset_settings()
        yield endpoints
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
    finally:
        started.stop()


@pytest.fixture(scope="session")
async def provisioned(emulators: EmulatorEndpoints) -> AsyncIterator[EmulatorEndpoints]:
    """The emulators with the app's database, containers, queues and blob containers created."""
    from shared.adapters.azure_provisioning import provision
    from shared.adapters.clients import close_clients, get_clients

    await provision(get_clients())
    yield emulators
    await close_clients()
