"""GP lists read from `gp-uploads` in ranged chunks pinned to one ETag; reports written to `gp-reports` as blocks.

Neither side ever holds a whole file: a list is read a chunk at a time (each read conditional on the
version being unchanged, so a replaced file can never be half one version and half the next), and a
report is staged block by block as its lines accumulate, then committed in one step, so a reader sees
the old report or the new one, never a part.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Final

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, ContentSettings
from azure.storage.blob.aio import ContainerClient

from shared.adapters.blob_reading import pinned_chunks, plain_etag, quoted_etag
from shared.ports.gp import BlobVersion, FileChangedError

CHUNK_BYTES: Final = 1 << 18  # one ranged read: 256 KiB, so a chunk and its text and lines stay small
BLOCK_BYTES: Final = 1 << 20  # one staged block of the report (a blob takes up to 50,000)


class BlobUploadFiles:
    def __init__(self, container: ContainerClient, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._container = container
        self._chunk = chunk_bytes

    async def version(self, blob_name: str) -> BlobVersion | None:
        try:
            properties = await self._container.get_blob_client(blob_name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return BlobVersion(blob_name, plain_etag(str(properties.etag)), int(properties.size))

    async def chunks(self, blob_name: str, etag: str) -> AsyncIterator[bytes]:
        async for chunk in pinned_chunks(self._container.get_blob_client(blob_name), etag, 0, self._chunk):
            yield chunk


class _BlockWriter:
    """Stages a block each time BLOCK_BYTES of report accumulate; commits the list at the end."""

    def __init__(self, container: ContainerClient, blob_name: str, replaces: str | None, block_bytes: int) -> None:
        self._blob = container.get_blob_client(blob_name)
        self._replaces = replaces
        self._block_bytes = block_bytes
        self._pending: list[str] = []
        self._size = 0
        self._blocks: list[BlobBlock] = []
        # Block ids are per blob and all of one length: a writer's own prefix keeps two writers of the
        # same report (a check and an invitation run) from overwriting each other's uncommitted blocks.
        self._prefix = uuid.uuid4().hex

    async def write(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= self._block_bytes:
            await self._stage()

    async def _stage(self) -> None:
        data = "".join(self._pending).encode("utf-8")
        self._pending, self._size = [], 0
        block_id = base64.b64encode(f"{self._prefix}-{len(self._blocks):06d}".encode()).decode()
        await self._blob.stage_block(block_id, data)
        self._blocks.append(BlobBlock(block_id=block_id))

    async def commit(self) -> None:
        if self._pending or not self._blocks:
            await self._stage()
        settings = ContentSettings(content_type="text/csv; charset=utf-8")
        try:
            if self._replaces is None:
                await self._blob.commit_block_list(self._blocks, content_settings=settings)
            else:
                await self._blob.commit_block_list(self._blocks, content_settings=settings,
                                                   etag=quoted_etag(self._replaces),
                                                   match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise FileChangedError("the report changed while it was rewritten") from None


class BlobReportFiles:
    def __init__(self, container: ContainerClient, block_bytes: int = BLOCK_BYTES) -> None:
        self._container = container
        self._block_bytes = block_bytes

    async def etag(self, blob_name: str) -> str | None:
        try:
            return plain_etag(str((await self._container.get_blob_client(blob_name).get_blob_properties()).etag))
        except ResourceNotFoundError:
            return None

    async def read(self, blob_name: str) -> bytes | None:
        try:
            download = await self._container.get_blob_client(blob_name).download_blob()
        except ResourceNotFoundError:
            return None
        return bytes(await download.readall())

    def writer(self, blob_name: str, replaces: str | None = None) -> _BlockWriter:
        return _BlockWriter(self._container, blob_name, replaces, self._block_bytes)
