"""Reading a blob in ranged chunks pinned to one version: what the GP list and NIMS file readers share."""

from __future__ import annotations

from collections.abc import AsyncIterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob.aio import BlobClient

from shared.ports.gp import FileChangedError


def plain_etag(etag: str) -> str:
    """The ETag as the ports carry it: without the quotes the service puts around it."""
    return etag.strip('"')


def quoted_etag(etag: str) -> str:
    return f'"{plain_etag(etag)}"'


async def pinned_chunks(blob: BlobClient, etag: str, offset: int, chunk_bytes: int) -> AsyncIterator[bytes]:
    """The blob from `offset` on, `chunk_bytes` at a time, each read conditional on `etag`.

    Raises FileChangedError when the blob is replaced or deleted while it is read, so a reader never mixes
    two versions of a file.
    """
    pinned, unchanged = quoted_etag(etag), MatchConditions.IfNotModified
    try:
        size = int((await blob.get_blob_properties(etag=pinned, match_condition=unchanged)).size)
        while offset < size:
            downloader = await blob.download_blob(offset=offset, length=min(chunk_bytes, size - offset),
                                                  max_concurrency=1, etag=pinned, match_condition=unchanged)
            chunk = await downloader.readall()
            if not chunk:
                break
            offset += len(chunk)
            yield chunk
    except (ResourceModifiedError, ResourceNotFoundError):
        raise FileChangedError("the blob changed while it was read") from None
