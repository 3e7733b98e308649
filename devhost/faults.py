"""Switches the Cosmos DB emulator's fault injection (devhost/cosmos_server.js) on and off at run time."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import httpx


def set_cosmos_faults(endpoint: str, ca_cert: str, rate: float,
                      statuses: Sequence[int] = (408, 429, 503)) -> dict[str, Any]:
    """Make `rate` of the emulator's document requests fail with one of `statuses`; 0 turns it off."""
    answer = httpx.post(f"{endpoint.rstrip('/')}/_devhost/faults", json={"rate": rate, "statuses": list(statuses)},
                        verify=ssl.create_default_context(cafile=ca_cert), timeout=10)
    answer.raise_for_status()
    settings: dict[str, Any] = answer.json()
    return settings


def cosmos_faults(endpoint: str, ca_cert: str) -> dict[str, Any]:
    """The emulator's fault settings and the faults injected since they were last set, by status."""
    answer = httpx.get(f"{endpoint.rstrip('/')}/_devhost/faults", verify=ssl.create_default_context(cafile=ca_cert),
                       timeout=10)
    answer.raise_for_status()
    settings: dict[str, Any] = answer.json()
    return settings
