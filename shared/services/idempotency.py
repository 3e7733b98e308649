"""What makes two requests "the same request" for an Idempotency-Key: a digest of the command."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from pydantic import BaseModel


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def command_digest(command: object) -> str:
    """A digest of the command as validated (so "ls1 4ap" and "LS1 4AP" are one request); 128 bits, hex."""
    canonical = json.dumps(_plain(command), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
