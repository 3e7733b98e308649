"""The one place that reads the environment: typed settings, built lazily and cached per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The Cosmos DB emulator's published, well-known development key; it is not a secret.
EMULATOR_COSMOS_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)


class Settings(BaseSettings):
    """Everything the app reads from its environment (Functions app settings in Azure)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)

    # Storage: a connection string locally; account endpoints plus managed identity in Azure,
    # using the Functions host's own identity-based setting names.
    storage_connection_string: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AzureWebJobsStorage", "STORAGE_CONNECTION_STRING"),
    )
    storage_queue_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AzureWebJobsStorage__queueServiceUri", "STORAGE_QUEUE_URI"),
    )
    storage_blob_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AzureWebJobsStorage__blobServiceUri", "STORAGE_BLOB_URI"),
    )

    cosmos_endpoint: str = Field(default="https://localhost:8081", validation_alias="COSMOS_ENDPOINT")
    # No key means DefaultAzureCredential (managed identity in Azure).
    cosmos_key: str | None = Field(default=None, validation_alias="COSMOS_KEY")
    cosmos_database: str = Field(default="vaccination", validation_alias="COSMOS_DATABASE")
    # A CA bundle to verify a local emulator's self-signed certificate; unset means the system store.
    cosmos_ca_cert: str | None = Field(default=None, validation_alias="COSMOS_CA_CERT")

    messaging: Literal["storage", "servicebus"] = Field(default="storage", validation_alias="MESSAGING")

    # Keyed hashing of personal data for logs and rate-limit keys; a Key Vault reference in Azure.
    pii_hash_key: str = Field(default="local-development-only", validation_alias="PII_HASH_KEY")

    # How long an instance may serve a policy before re-reading it: the bound on "applied everywhere".
    policy_refresh_seconds: float = Field(default=5.0, validation_alias="POLICY_REFRESH_SECONDS")
    # Eligibility calls per client address on one instance: a burst, then a steady rate.
    eligibility_client_burst: int = Field(default=60, validation_alias="ELIGIBILITY_CLIENT_BURST")
    eligibility_client_per_second: float = Field(default=1.0, validation_alias="ELIGIBILITY_CLIENT_PER_SECOND")
    # Failed date-of-birth matches for one NHS number before it is locked, and for how long.
    match_lock_max_failures: int = Field(default=5, validation_alias="MATCH_LOCK_MAX_FAILURES")
    match_lock_minutes: int = Field(default=15, validation_alias="MATCH_LOCK_MINUTES")

    # A booking saga not confirmed within this long is released by the repair timer.
    booking_saga_timeout_seconds: float = Field(default=120.0, validation_alias="BOOKING_SAGA_TIMEOUT_SECONDS")

    def cosmos_ca_path(self) -> str | None:
        """The CA file as an absolute path; relative paths are taken from the project root."""
        if not self.cosmos_ca_cert:
            return None
        path = Path(self.cosmos_ca_cert)
        return str(path if path.is_absolute() else PROJECT_ROOT / path)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests that change the environment call this)."""
    get_settings.cache_clear()
