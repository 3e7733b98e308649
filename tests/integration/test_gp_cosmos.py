"""GP adapters against the emulators: the register read a thousand at a time in one request, uploads and
invitations with their conditional writes, lists read in chunks pinned to one version, reports in blocks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from shared import resources
from shared.adapters.blob_gp_files import BlobReportFiles, BlobUploadFiles
from shared.adapters.cosmos_gp import CosmosRegisterBatch
from shared.composition import services
from shared.domain.invitations import Invitation
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.register import RegisterRecord
from shared.ports.gp import FileChangedError, UploadRecord
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def record(number: str) -> RegisterRecord:
    return RegisterRecord.model_validate({"nhsNumber": number, "dateOfBirth": "1960-05-05", "givenName": "Int",
                                          "familyName": "Test", "postcode": "LS1 4AP", "mobile": "07700900321"})


async def test_a_thousand_register_records_come_back_in_one_request(provisioned: EmulatorEndpoints) -> None:
    app = services()
    start = uuid.uuid4().int % 700_000
    numbers = [synthetic_nhs_number(start + i) for i in range(1000)]
    await app.register_import.import_records([record(n) for n in numbers[:990]])
    batch = CosmosRegisterBatch(app.clients.database().get_container_client(resources.PATIENTS.name))
    await batch.read_many(numbers[:2])  # the SDK reads the container's partition key ranges once
    app.clients.cosmos_requests.reset()
    found = await batch.read_many(numbers)
    assert set(found) == set(numbers[:990])
    assert found[numbers[0]].record.mobile == "07700900321" and found[numbers[0]].booked_doses == frozenset()
    assert app.clients.cosmos_requests.by_kind == {"POST docs": 1}, app.clients.cosmos_requests.by_kind


async def test_uploads_and_invitations_are_written_once_and_replaced_on_their_etags(
        provisioned: EmulatorEndpoints) -> None:
    store = services().gp_store
    ods = f"Y{uuid.uuid4().int % 10**7:07d}"
    upload = UploadRecord(ods_code=ods, file_name="list", received_at=NOW, status="processing", etag="0x1",
                          content_hash="abc", started_at=NOW)
    created = await store.create_upload(upload)
    assert created is not None and await store.create_upload(upload) is None
    done = await store.replace_upload(created, dataclasses.replace(upload, status="done", rows=3,
                                                                    outcomes={"INVITABLE": 3}))
    assert done is not None and await store.replace_upload(created, upload) is None  # a stale etag loses
    assert [u.outcomes for u in await store.uploads(ods)] == [{"INVITABLE": 3}]
    people = [uuid.uuid4().hex[:24] for _ in range(3)]
    for i, person in enumerate(people):
        made = await store.create_invitation(Invitation(ods, person, synthetic_nhs_number(i), "+447700900321", "list",
                                                        NOW - dt.timedelta(hours=i), NOW + dt.timedelta(days=14)))
        assert made is not None and made.etag
    assert await store.create_invitation(Invitation(ods, people[0], "x", "y", "list", NOW, NOW)) is None
    found = await store.invitations(ods, [*people, "f" * 24])
    assert set(found) == set(people)
    assert await store.open_invitations(ods, NOW) == 3
    assert {i.person for i in await store.untexted_invitations(ods, NOW - dt.timedelta(minutes=30))} == set(people[1:])
    await store.mark_texted(found[people[1]])
    await store.mark_booked(ods, people[2], "ABCD1234", NOW)
    assert await store.open_invitations(ods, NOW) == 2
    assert await store.untexted_invitations(ods, NOW - dt.timedelta(minutes=30)) == []
    again = await store.replace_invitation(found[people[0]],
                                           dataclasses.replace(found[people[0]], mobile="+447700900999"))
    assert again is not None
    assert await store.replace_invitation(found[people[0]], found[people[0]]) is None  # the etag moved on


async def test_a_list_is_read_in_chunks_of_one_version_and_a_report_committed_in_blocks(
        provisioned: EmulatorEndpoints) -> None:
    blobs = services().clients.blobs()
    files = BlobUploadFiles(blobs.get_container_client(resources.BLOB_GP_UPLOADS), chunk_bytes=1000)
    reports = BlobReportFiles(blobs.get_container_client(resources.BLOB_GP_REPORTS), block_bytes=1000)
    name = f"Y{uuid.uuid4().int % 10**7:07d}/list.csv"
    data = b"".join(f"{i:09d},row\r\n".encode() for i in range(500))  # 7,500 bytes
    await blobs.get_container_client(resources.BLOB_GP_UPLOADS).upload_blob(name, data)
    version = await files.version(name)
    assert version is not None and version.size == len(data)
    chunks = [chunk async for chunk in files.chunks(name, version.etag)]
    assert b"".join(chunks) == data and len(chunks) == 8
    reading = files.chunks(name, version.etag)
    await anext(reading)
    await blobs.get_container_client(resources.BLOB_GP_UPLOADS).upload_blob(name, b"replaced", overwrite=True)
    with pytest.raises(FileChangedError):
        await anext(reading)
    writer = reports.writer(name)
    for i in range(300):
        await writer.write(f"{i},line\r\n")
    assert await reports.etag(name) is None  # nothing shows until the commit
    await writer.commit()
    report = blobs.get_container_client(resources.BLOB_GP_REPORTS).get_blob_client(name)
    text = (await (await report.download_blob()).readall()).decode()
    assert text.splitlines()[0] == "0,line" and len(text.splitlines()) == 300
    assert len((await report.get_block_list())[0]) >= 3  # staged as it went, not held to the end
    stale = reports.writer(name, replaces="0x0000")
    await stale.write("lost\r\n")
    with pytest.raises(FileChangedError):
        await stale.commit()
