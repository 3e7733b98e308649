"""Logging that keeps personal data out: keyed hashes for identifiers, exceptions without messages."""

from __future__ import annotations

import hashlib
import hmac
import logging
import traceback

from shared.settings import get_settings


def quiet_sdk_loggers() -> None:
    """The SDKs log every request's URL and headers at INFO: noise, and item URLs can carry identifiers."""
    for noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.cosmos", "azure.storage",
                  "azure.identity", "azure.servicebus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def pseudonym(value: str, purpose: str = "log") -> str:
    """A keyed hash of a personal identifier: stable for correlation, useless without the key."""
    key = get_settings().pii_hash_key.encode()
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:24]


def redacted_traceback(error: BaseException) -> str:
    """Where and what kind of error, without the messages (an SDK message may quote a document)."""
    lines: list[str] = []
    current: BaseException | None = error
    while current is not None:
        frames = traceback.extract_tb(current.__traceback__)
        lines.extend(f"  {f.filename}:{f.lineno} in {f.name}" for f in frames)
        lines.append(f"{type(current).__module__}.{type(current).__qualname__}")
        current = current.__cause__ or current.__context__
        if current is not None:
            lines.append("caused by:")
    return "\n".join(lines)
