"""The one place that reads the environment: typed settings, built lazily and cached per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Every key's development default. In Azure the app refuses to start with it, with a key shorter than
# MIN_KEY_CHARS, or with a Key Vault reference the platform could not resolve (it arrives as its own
# text): a known signing key forges admission tokens, a wrong PII key orphans the documents it ids
# (docs/security.md, finding 3).
DEVELOPMENT_KEY = "local-development-only"
MIN_KEY_CHARS = 32
_KEYS = ("pii_hash_key", "waiting_room_signing_key", "waiting_room_previous_signing_key", "gp_invite_signing_key")


class UnsafeSettingsError(RuntimeError):
    """Settings the app must not run with in Azure. Not a ValueError, so pydantic never quotes the values."""


def key_problem(value: str | None) -> str | None:
    """Why a key is not fit for Azure, or None when it is (or is unset)."""
    if value is None:
        return None
    if value.strip().lower().startswith("@microsoft.keyvault("):
        return "is an unresolved Key Vault reference (check the app's identity and the secret URI)"
    if value == DEVELOPMENT_KEY:
        return "is the development default"
    if len(value) < MIN_KEY_CHARS:
        return f"is shorter than {MIN_KEY_CHARS} characters"
    return None


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
    # Booking events (docs/events.md): how many events one instance publishes at once, and how long a booking
    # must go unchanged with its events unmarked before the outbox repair timer sends them (the feed missed them).
    event_publish_concurrency: int = Field(default=64, ge=1, validation_alias="EVENT_PUBLISH_CONCURRENCY")
    outbox_repair_grace_seconds: float = Field(default=60.0, ge=0, validation_alias="OUTBOX_REPAIR_GRACE_SECONDS")

    # Keyed hashing of personal data for logs and rate-limit keys; a Key Vault reference in Azure.
    pii_hash_key: str = Field(default=DEVELOPMENT_KEY, repr=False, validation_alias="PII_HASH_KEY")

    # How long an instance may serve a policy before re-reading it: the bound on "applied everywhere".
    policy_refresh_seconds: float = Field(default=5.0, validation_alias="POLICY_REFRESH_SECONDS")
    # Eligibility calls per client address on one instance: a burst, then a steady rate.
    eligibility_client_burst: int = Field(default=60, validation_alias="ELIGIBILITY_CLIENT_BURST")
    eligibility_client_per_second: float = Field(default=1.0, validation_alias="ELIGIBILITY_CLIENT_PER_SECOND")
    # Failed date-of-birth matches for one NHS number before it is locked, and for how long.
    match_lock_max_failures: int = Field(default=5, validation_alias="MATCH_LOCK_MAX_FAILURES")
    match_lock_minutes: int = Field(default=15, validation_alias="MATCH_LOCK_MINUTES")

    # How long an instance may serve a site's slot listing again (0: every listing is a fresh query).
    slot_listing_cache_seconds: float = Field(default=2.0, validation_alias="SLOT_LISTING_CACHE_SECONDS")
    # A booking saga not confirmed within this long is released by the repair timer.
    booking_saga_timeout_seconds: float = Field(default=120.0, validation_alias="BOOKING_SAGA_TIMEOUT_SECONDS")

    # Waiting room. The signing key signs tickets and admission tokens: a Key Vault reference app
    # setting in Azure. The previous key still verifies during a rotation; it never signs.
    waiting_room_signing_key: str = Field(default="local-development-only", repr=False,
                                          validation_alias="WAITING_ROOM_SIGNING_KEY")
    waiting_room_previous_signing_key: str | None = Field(default=None, repr=False,
                                                          validation_alias="WAITING_ROOM_PREVIOUS_SIGNING_KEY")

    # Notifications (docs/notifications.md). ACS: a connection string locally (devhost's stand-in);
    # the endpoint plus managed identity in Azure, no key.
    acs_connection_string: str | None = Field(default=None, repr=False, validation_alias="ACS_CONNECTION_STRING")
    acs_endpoint: str | None = Field(default=None, validation_alias="ACS_ENDPOINT")
    sms_from: str = Field(default="VaxBooking", validation_alias="SMS_FROM")
    # Unset: no emails are sent.
    email_from: str | None = Field(default=None, validation_alias="EMAIL_FROM")
    # Where people cancel or change a booking; texts point at <url>/manage.
    booking_site_url: str = Field(default="http://127.0.0.1:7071", validation_alias="BOOKING_SITE_URL")
    # Per instance: the account's ACS limit divided by the most instances the app may scale to.
    sms_sends_per_minute: float = Field(default=600.0, validation_alias="SMS_SENDS_PER_MINUTE")
    email_sends_per_minute: float = Field(default=600.0, validation_alias="EMAIL_SENDS_PER_MINUTE")
    # Tries within one invocation before the message goes back on the queue, and their backoff.
    send_attempts: int = Field(default=4, ge=1, validation_alias="SEND_ATTEMPTS")
    send_retry_base_seconds: float = Field(default=1.0, validation_alias="SEND_RETRY_BASE_SECONDS")
    send_retry_max_seconds: float = Field(default=30.0, validation_alias="SEND_RETRY_MAX_SECONDS")
    # ACS remembers a repeatable request for 5 minutes; a resend is trusted to dedupe only within this.
    acs_repeatability_window_seconds: float = Field(default=240.0,
                                                    validation_alias="ACS_REPEATABILITY_WINDOW_SECONDS")
    # Texts a day (Europe/London) to one booking, one person and one number (docs/security.md).
    sms_limit_per_booking: int = Field(default=6, ge=1, validation_alias="SMS_LIMIT_PER_BOOKING")
    sms_limit_per_person: int = Field(default=10, ge=1, validation_alias="SMS_LIMIT_PER_PERSON")
    sms_limit_per_recipient: int = Field(default=10, ge=1, validation_alias="SMS_LIMIT_PER_RECIPIENT")
    # MESSAGING=servicebus: a connection string, or the namespace for managed identity.
    servicebus_connection: str | None = Field(default=None, repr=False, validation_alias="SERVICEBUS_CONNECTION")
    servicebus_namespace: str | None = Field(
        default=None, validation_alias="SERVICEBUS_CONNECTION__fullyQualifiedNamespace")

    # How stale an instance's view of the settings and of admission progress may be.
    waiting_room_refresh_seconds: float = Field(default=2.0, validation_alias="WAITING_ROOM_REFRESH_SECONDS")
    waiting_room_token_minutes: float = Field(default=10.0, validation_alias="WAITING_ROOM_TOKEN_MINUTES")
    waiting_room_ticket_hours: float = Field(default=12.0, validation_alias="WAITING_ROOM_TICKET_HOURS")
    # How often an instance writes the polls it saw near the front (one write per instance, not per poll).
    waiting_room_report_seconds: float = Field(default=5.0, validation_alias="WAITING_ROOM_REPORT_SECONDS")
    # Joins arriving together on one instance share a queue message; this is how long one waits for company.
    waiting_room_join_batch_ms: float = Field(default=20.0, validation_alias="WAITING_ROOM_JOIN_BATCH_MS")
    waiting_room_join_burst: int = Field(default=20, validation_alias="WAITING_ROOM_JOIN_BURST")
    waiting_room_join_per_second: float = Field(default=0.5, validation_alias="WAITING_ROOM_JOIN_PER_SECOND")
    # The same for an IPv4 address, which a mobile network's NAT or a hospital's proxy shares among thousands:
    # sized for the busiest such address on the day a cohort opens (docs/security.md, finding 8).
    waiting_room_join_shared_burst: int = Field(default=300, validation_alias="WAITING_ROOM_JOIN_SHARED_BURST")
    waiting_room_join_shared_per_second: float = Field(default=10.0,
                                                       validation_alias="WAITING_ROOM_JOIN_SHARED_PER_SECOND")

    # Sites (docs/sites.md): how often each instance re-reads the whole site list for search, how long
    # it reuses a site's next available date, and how many slot documents it writes at once.
    site_index_refresh_seconds: float = Field(default=60.0, validation_alias="SITE_INDEX_REFRESH_SECONDS")
    site_availability_seconds: float = Field(default=60.0, validation_alias="SITE_AVAILABILITY_SECONDS")
    slot_write_concurrency: int = Field(default=16, ge=1, validation_alias="SLOT_WRITE_CONCURRENCY")

    # GP practices (docs/gp-practices.md): invitations a run may send per free clinic place in the next
    # 28 days, how many days a code works, and the key that signs codes (a Key Vault reference in Azure).
    gp_invite_factor: float = Field(default=3.0, gt=0, validation_alias="GP_INVITE_FACTOR")
    gp_invite_days: int = Field(default=14, ge=1, le=90, validation_alias="GP_INVITE_DAYS")
    gp_invite_signing_key: str = Field(default="local-development-only", repr=False,
                                       validation_alias="GP_INVITE_SIGNING_KEY")

    # The NIMS exchange (docs/nims.md): records per outbound file; how long a batch a run opened is left to it
    # (longer than the function timeout) before another run writes it again; how long a run keeps starting
    # work; inbound lines applied (and reconciled) together; the days around today whose slot counters each
    # inbound run recounts.
    nims_export_batch_size: int = Field(default=1000, ge=1, le=10_000, validation_alias="NIMS_EXPORT_BATCH_SIZE")
    nims_export_lease_seconds: float = Field(default=600.0, gt=0, validation_alias="NIMS_EXPORT_LEASE_SECONDS")
    nims_run_seconds: float = Field(default=240.0, gt=0, validation_alias="NIMS_RUN_SECONDS")
    nims_inbound_batch_lines: int = Field(default=1000, ge=1, le=5000, validation_alias="NIMS_INBOUND_BATCH_LINES")
    nims_recount_days_before: int = Field(default=2, ge=0, le=60, validation_alias="NIMS_RECOUNT_DAYS_BEFORE")
    nims_recount_days_after: int = Field(default=14, ge=0, le=120, validation_alias="NIMS_RECOUNT_DAYS_AFTER")

    # Set by the platform in Azure, never locally: the instance and app it runs as, and whether App Service
    # Authentication is on (staff routes refuse without it: docs/security.md, finding 9).
    website_instance_id: str | None = Field(default=None, validation_alias="WEBSITE_INSTANCE_ID")
    website_site_name: str | None = Field(default=None, validation_alias="WEBSITE_SITE_NAME")
    website_auth_enabled: bool = Field(default=False, validation_alias="WEBSITE_AUTH_ENABLED")
    # Behind Azure Front Door: its profile's id (X-Azure-FDID), so that X-Azure-ClientIP is believed only
    # from our own Front Door (docs/security.md, finding 8). Unset: the last X-Forwarded-For hop.
    front_door_id: str | None = Field(default=None, validation_alias="FRONT_DOOR_ID")

    @property
    def in_azure(self) -> bool:
        """Running on the Functions platform in Azure (detected from what the host sets), not locally."""
        return bool(self.website_instance_id or self.website_site_name)

    @model_validator(mode="after")
    def _keys_fit_for_azure(self) -> Settings:
        if self.in_azure:
            problems = [f"{name.upper()} {problem}" for name in _KEYS
                        if (problem := key_problem(getattr(self, name, None)))]
            if problems:
                raise UnsafeSettingsError("Refusing to start in Azure: " + "; ".join(problems))
        return self

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
