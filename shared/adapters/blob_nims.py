"""NIMS files in Blob Storage: outbound batches written whole, inbound files listed and read in ranged chunks
pinned to one version, reports staged as blocks and committed in one step (so a reader sees a whole report)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Final

from azure.storage.blob import BlobBlock, ContentSettings
from azure.storage.blob.aio import ContainerClient

from shared.adapters.blob_reading import pinned_chunks, plain_etag
from shared.ports.nims import InboundBlob

CHUNK_BYTES: Final = 1 << 20  # one ranged read of an inbound file: 1 MiB


class BlobOutboundFiles:
    """`nims-outbound`: one NDJSON file per batch."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    async def write(self, blob_name: str, lines: Sequence[str]) -> None:
        data = "".join(lines).encode("utf-8")
        await self._container.upload_blob(blob_name, data, overwrite=True, content_settings=ContentSettings(
            content_type="application/fhir+ndjson"))


class BlobInboundFiles:
    """`nims-inbound`."""

    def __init__(self, container: ContainerClient, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._container = container
        self._chunk = chunk_bytes

    async def list(self) -> AsyncIterator[InboundBlob]:
        async for blob in self._container.list_blobs():
            if blob.last_modified is None or blob.etag is None:
                continue
            yield InboundBlob(blob.name, plain_etag(str(blob.etag)), int(blob.size or 0), blob.last_modified)

    async def chunks(self, blob: InboundBlob, offset: int) -> AsyncIterator[bytes]:
        async for chunk in pinned_chunks(self._container.get_blob_client(blob.name), blob.etag, offset, self._chunk):
            yield chunk


def _block_id(block: str) -> str:
    return base64.b64encode(block.encode()).decode()


class BlobInboundReports:
    """`nims-inbound-reports`: `{fileName}.report.json`."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    async def stage(self, blob_name: str, block: str, text: str) -> None:
        await self._container.get_blob_client(blob_name).stage_block(_block_id(block), text.encode("utf-8"))

    async def commit(self, blob_name: str, blocks: Sequence[str]) -> None:
        await self._container.get_blob_client(blob_name).commit_block_list(
            [BlobBlock(block_id=_block_id(b)) for b in blocks],
            content_settings=ContentSettings(content_type="application/json"))
