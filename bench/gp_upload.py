"""A GP practice's 100,000-row patient list, end to end, and the invitation texts it leads to.

1. One row in ten is put on the register (straight into the emulator, 64 writes at a time: the emulator
   takes about 450 a second, so the whole list would take minutes), the rest are NOT_IN_REGISTER; every
   row is still looked up in batches. A GP practice is registered with clinics through devhost.
2. The list is written to gp-uploads with the Blob SDK; devhost's Event Grid stand-in delivers the
   BlobCreated event to the blob trigger, which checks it. Timed from the upload to the upload record
   saying `done` (the report is committed first): **rows per second end to end**. Meanwhile the devhost
   process's resident memory is sampled every 50 ms: **peak memory of the worker** and its growth.
3. The list's first 20,000 rows, under another name, are checked in this process with the same adapters,
   counting every Cosmos request at the SDK transport: **Cosmos requests per row** (a cost per batch, so
   the same for any length).
4. The practice invites: `POST /api/gp/{ods}/invitations` with a limit; the texts go through the queue
   and the notification path to devhost's ACS stand-in. Timed from the answer to the last text at
   /dev/sms: **invitations sent per second** (the per-instance SMS rate is raised for this run, so the path
   itself is measured, not the ACS quota).

Run: `.venv/bin/python -m bench.gp_upload [--rows 100000] [--invites 1000]`. Prints a JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from azure.storage.blob.aio import BlobServiceClient

from bench.emulated import emulated
from devhost.launch import start_devhost
from shared import resources
from shared.adapters.azure_provisioning import provision
from shared.adapters.clients import close_clients, get_clients
from shared.api.principal import encode_principal
from shared.composition import Services
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.register import RegisterRecord

ADMIN = {"x-ms-client-principal": encode_principal("Bench Admin", ["NationalAdmin"])}
ODS = "Y70001"
BORN = "1960-05-05"
PRACTICE = "Bench Practice"
# The path's own rate is measured: the ACS quota (600 a minute by default) is not in the way, and the
# drama range's thousand numbers may each be texted more than the daily cap allows.
BENCH_SETTINGS = {"DEVHOST_LOG_LEVEL": "WARNING", "SMS_SENDS_PER_MINUTE": "120000",
                  "SMS_LIMIT_PER_RECIPIENT": "1000000", "SMS_LIMIT_PER_PERSON": "1000000",
                  "SMS_LIMIT_PER_BOOKING": "1000000", "SEND_RETRY_BASE_SECONDS": "0.1"}


def numbers(rows: int) -> list[str]:
    return [synthetic_nhs_number(i) for i in range(rows)]


def patient_list(people: list[str]) -> bytes:
    lines = ["NHS Number,Date of Birth,Family Name,Given Name,Postcode,Mobile"]
    lines += [f"{n[:3]} {n[3:6]} {n[6:]},{BORN},Bench,Person,LS1 4AP,07700 900{i % 1000:03d}"
              for i, n in enumerate(people)]
    return ("\r\n".join(lines) + "\r\n").encode()


async def load_register(people: list[str]) -> float:
    """The people, straight into the patients container, 64 writes at a time; seconds taken."""
    app = Services(get_clients())
    await provision(app.clients)
    started = time.perf_counter()
    slots = asyncio.Semaphore(64)
    now = dt.datetime.now(dt.UTC)

    async def one(number: str) -> None:
        async with slots:
            await app.patient_store.upsert_register_record(RegisterRecord(
                nhs_number=number, date_of_birth=dt.date.fromisoformat(BORN), given_name="Bench",
                family_name="Person", postcode="LS1 4AP"), now)

    for first in range(0, len(people), 5000):
        await asyncio.gather(*(one(n) for n in people[first:first + 5000]))
    return time.perf_counter() - started


def register_practice(url: str, places: int) -> None:
    """A GP practice with clinics tomorrow holding at least `places` places."""
    answer = httpx.post(f"{url}/api/admin/sites", headers=ADMIN, timeout=60, json={
        "name": PRACTICE, "type": "gpPractice", "odsCode": ODS, "postcode": "LS1 4AP", "products": ["PFIZER"],
        "ageBands": [{"minAge": 16}]})
    assert answer.status_code == 201, answer.text
    tomorrow = (dt.datetime.now(ZoneInfo("Europe/London")) + dt.timedelta(days=1)).date()
    hours = max(1, -(-places // 400))  # 4 slots an hour of 100 places each
    opened = httpx.post(f"{url}/api/admin/sites/{ODS}/sessions", headers=ADMIN, timeout=120, json={
        "date": tomorrow.isoformat(), "start": "08:00", "end": f"{8 + hours:02d}:00", "slotMinutes": 15,
        "capacityPerSlot": 100, "product": "PFIZER"})
    assert opened.status_code == 201, opened.text


class RssSampler:
    """The resident memory of a process (this one by default), sampled from /proc every 50 ms."""

    def __init__(self, pid: int | str = "self") -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        for line in self._path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def upload(storage: str, blob_name: str, data: bytes) -> None:
    async with BlobServiceClient.from_connection_string(storage) as service:
        await service.get_container_client(resources.BLOB_GP_UPLOADS).upload_blob(blob_name, data, overwrite=True)


def wait_done(url: str, file_name: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/gp/{ODS}/uploads", headers=ADMIN, timeout=30)
        found = [u for u in answer.json()["uploads"] if u["fileName"] == file_name and u["status"] != "processing"]
        if found:
            return dict(found[0])
        time.sleep(0.1)
    raise AssertionError("the list was not checked in time")


async def check_in_process(data: bytes) -> tuple[float, float, int, int]:
    """The same list checked in this process: (rows/s, Cosmos requests per row, rows, storage requests)."""
    app = Services(get_clients())
    blobs = app.clients.blobs().get_container_client(resources.BLOB_GP_UPLOADS)
    await blobs.upload_blob(f"{ODS}/again.csv", data, overwrite=True)
    await app.policy.current()  # the policy cache, as a warm worker has it
    app.clients.cosmos_requests.reset()
    app.clients.storage_requests.reset()
    started = time.perf_counter()
    assert await app.gp_uploads.process(f"{ODS}/again.csv") == "checked"
    seconds = time.perf_counter() - started
    stored = await app.gp_store.get_upload(ODS, "again")
    assert stored is not None
    rows = stored.record.rows
    return rows / seconds, app.clients.cosmos_requests.total / rows, rows, app.clients.storage_requests.total


def texts_from_practice(url: str) -> list[dt.datetime]:
    """When each invitation text from the practice reached devhost's ACS stand-in."""
    answer = httpx.get(f"{url}/dev/sms", headers={"Accept": "application/json"}, timeout=30)
    return [dt.datetime.fromisoformat(m["receivedAt"]) for m in answer.json()["messages"] if PRACTICE in m["message"]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--invites", type=int, default=1_000)
    args = parser.parse_args(argv)
    people = numbers(args.rows)
    data = patient_list(people)
    result: dict[str, Any] = {"benchmark": "gp_upload", "rows": args.rows, "file_mb": round(len(data) / 1e6, 1)}
    with tempfile.TemporaryDirectory() as tmp, emulated(Path(tmp)) as emulators:
        result["register_load_s"] = round(asyncio.run(_run(load_register(people[::10]))), 1)
        devhost = start_devhost({**emulators.environment, **BENCH_SETTINGS}, Path(tmp) / "devhost.log")
        try:
            register_practice(devhost.url, -(-args.invites // 3))
            with RssSampler(devhost.process.pid) as memory:
                before = memory.now()
                started = time.perf_counter()
                asyncio.run(upload(emulators.environment["AzureWebJobsStorage"], f"{ODS}/list.csv", data))
                done = wait_done(devhost.url, "list")
                seconds = time.perf_counter() - started
            assert done["status"] == "done" and done["rows"] == args.rows, done
            result.update(end_to_end_s=round(seconds, 1), rows_per_s=round(args.rows / seconds),
                          worker_rss_before_mb=round(before / 1e6, 1),
                          worker_rss_peak_mb=round(memory.peak / 1e6, 1),
                          worker_rss_growth_mb=round((memory.peak - before) / 1e6, 1))
            in_process, per_row, rows, storage = asyncio.run(_run(check_in_process(
                patient_list(people[:20_000]))))
            result.update(in_process_rows_per_s=round(in_process), cosmos_requests_per_row=round(per_row, 4),
                          storage_requests_per_row=round(storage / rows, 4))
            started = time.perf_counter()
            answer = httpx.post(f"{devhost.url}/api/gp/{ODS}/invitations", headers=ADMIN, timeout=600,
                                json={"fileName": "list", "limit": args.invites})
            run_seconds = time.perf_counter() - started
            assert answer.status_code == 202, answer.text
            invited = answer.json()["invited"]
            deadline = time.perf_counter() + 600
            while len(texts_from_practice(devhost.url)) < invited and time.perf_counter() < deadline:
                time.sleep(0.2)
            times = sorted(texts_from_practice(devhost.url))
            # Texts start while the run is still reading the list (each batch's invitations are queued as
            # it goes), so the rate is taken from the texts' own arrival times.
            spread = max((times[-1] - times[0]).total_seconds(), 0.001) if len(times) > 1 else 0.001
            result.update(invited=invited, texted=len(times), invitation_run_s=round(run_seconds, 1),
                          invitations_sent_per_s=round((len(times) - 1) / spread, 1))
        finally:
            devhost.stop()
    print(f"gp list of {args.rows} rows: {result['rows_per_s']} rows/s end to end "
          f"({result['in_process_rows_per_s']} in process), {result['cosmos_requests_per_row']} Cosmos requests a row, "
          f"worker peak {result['worker_rss_peak_mb']} MB; {result['invitations_sent_per_s']} invitations texted/s")
    print(json.dumps(result))
    return result


async def _run(work: Any) -> Any:
    try:
        return await work
    finally:
        await close_clients()


if __name__ == "__main__":
    main()
