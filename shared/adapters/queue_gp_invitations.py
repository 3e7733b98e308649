"""Invitation texts owed, on the gp-invitations storage queue: a message names a practice and up to 32 people."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueServiceClient

PERSONS_PER_MESSAGE: Final = 32


def invitation_message(ods_code: str, persons: list[str]) -> str:
    """The message body (base64, as host.json tells the trigger): pseudonyms only, no personal data."""
    body = json.dumps({"odsCode": ods_code, "persons": persons}, separators=(",", ":")).encode()
    return base64.b64encode(body).decode()


def read_invitation_message(body: bytes) -> tuple[str, list[str]]:
    """(ODS code, pseudonyms) of a message body the trigger decoded; ValueError for anything else."""
    try:
        data = json.loads(body)
        ods, persons = data["odsCode"], data["persons"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("not an invitation message") from None
    if not isinstance(ods, str) or not isinstance(persons, list) or not all(isinstance(p, str) for p in persons):
        raise ValueError("not an invitation message")
    return ods, persons


class StorageInvitationTexts:
    def __init__(self, queues: QueueServiceClient, name: str) -> None:
        self._queue = queues.get_queue_client(name)

    async def enqueue(self, ods_code: str, persons: list[str]) -> None:
        batches = [persons[i:i + PERSONS_PER_MESSAGE] for i in range(0, len(persons), PERSONS_PER_MESSAGE)]
        await asyncio.gather(*(self._queue.send_message(invitation_message(ods_code, batch)) for batch in batches))
