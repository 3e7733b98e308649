"""GP practices over in-memory ports: the report of every outcome, files refused whole, one report and one text
however often a file arrives, the cap on invitations, booking by invitation and its refusals, flat memory."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.domain.invitations import InvitationClaims, InvitationSigner
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.sites import Site
from shared.domain.staff import GP_PRACTICE, NATIONAL_ADMIN, Principal
from shared.ports.gp import BlobVersion, FileChangedError
from shared.ports.patients import DoseClaim
from shared.ports.sites import StoredSite
from shared.services.errors import (
    ChangedMeanwhile,
    Forbidden,
    InvalidRequest,
    InvitationExpired,
    NotEligible,
    NotFound,
)
from shared.services.gp.invitations import GpInvitationService, InvitationSettings, InviteCommand, InvitedBooking
from shared.services.gp.reading import ListPass
from shared.services.gp.uploads import GpUploadService, UploadInProgressError
from shared.services.sites.access import StaffAccess
from shared.services.sites.index import SiteIndex
from shared.services.sites.search import SlotRange
from tests.unit.services.fakes import (
    BookingWorld,
    HoldsSiteStore,
    InMemoryGpStore,
    InMemoryRegisterBatch,
    InMemoryReportFiles,
    InMemoryStaff,
    InMemoryUploadFiles,
    RecordingInvitationSender,
    RecordingInvitationTexts,
)

ROOT = Path(__file__).resolve().parents[3]
ODS = "Y90001"
OTHER = "Y90002"
CLINIC = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # three days after the FakeClock's start
HEADER = "\ufeffnhs_number,Date Of Birth,FAMILY NAME,given name,Postcode,Practice notes,mobile\r\n"
PRACTICE_STAFF = Principal("gp-user", "Dr Practice", frozenset({GP_PRACTICE}))
ADMIN = Principal("admin", "Nat Admin", frozenset({NATIONAL_ADMIN}))


def person_key(number: str) -> str:
    return hmac.new(b"unit-test", f"gp-invite:{number}".encode(), hashlib.sha256).hexdigest()[:24]


@dataclass
class GpWorld:
    booking: BookingWorld = field(default_factory=BookingWorld)
    files: InMemoryUploadFiles = field(default_factory=InMemoryUploadFiles)
    reports: InMemoryReportFiles = field(default_factory=InMemoryReportFiles)
    store: InMemoryGpStore = field(default_factory=InMemoryGpStore)
    texts: RecordingInvitationTexts = field(default_factory=RecordingInvitationTexts)
    sender: RecordingInvitationSender = field(default_factory=RecordingInvitationSender)
    staff: InMemoryStaff = field(default_factory=InMemoryStaff)
    signer: InvitationSigner = field(default_factory=lambda: InvitationSigner(b"unit-test-invitations"))
    factor: float = 3.0

    def __post_init__(self) -> None:
        clock = self.booking.clock
        self.register = InMemoryRegisterBatch(self.booking.patients)
        self.site_store = HoldsSiteStore(holds=self.booking.holds)
        index = SiteIndex(self.site_store, 60, clock)
        access = StaffAccess(self.staff, index, clock)
        self.list_pass = ListPass(self.files, self.register, self.store, self.booking.service._policies, clock,
                                  person_key, batch_rows=4)
        self.uploads = GpUploadService(self.files, self.reports, self.store, self.list_pass, access, clock)
        self.invitations = GpInvitationService(
            self.store, self.files, self.site_store, index, access, self.list_pass, self.reports, self.texts,
            self.sender, self.booking.service, self.signer, clock,
            InvitationSettings(factor=self.factor, days=14, site_url="https://book.example"))
        self.staff.assigned[PRACTICE_STAFF.user_id] = frozenset({ODS})
        for ods, name in ((ODS, "Riverside Surgery"), (OTHER, "Hillside Practice")):
            site = Site.model_validate({
                "siteId": ods, "name": name, "type": "gpPractice", "odsCode": ods, "postcode": "LS1 4AP",
                "location": {"lat": 53.8, "lon": -1.55}, "products": ["PFIZER", "ASTRAZENECA"],
                "ageBands": [{"minAge": 16}]})
            self.booking.sites.sites[ods] = site
            self.site_store.sites[ods] = StoredSite(site, None)

    def clinic(self, capacity: int, start: dt.datetime = CLINIC, ods: str = ODS) -> str:
        return self.booking.slot(start, capacity, site_id=ods)

    async def upload(self, text: str, file_name: str = "list", ods: str = ODS) -> str:
        self.files.put(f"{ods}/{file_name}.csv", text.encode("utf-8"))
        return await self.uploads.process(f"{ods}/{file_name}.csv")

    def report(self, file_name: str = "list", ods: str = ODS) -> str:
        return self.reports.text(f"{ods}/{file_name}.report.csv")

    async def send_texts(self) -> None:
        await asyncio.gather(*(self.invitations.send(ods, persons) for ods, persons in self.texts.take()))

    def codes(self) -> list[str]:
        return [text.split("/invite/")[1].split()[0].rstrip(".") for _, text in self.sender.texts.values()]


def row(number: str, born: str, mobile: str = "", family: str = "Smith") -> str:
    return f"{number},{born},{family},Alex,LS1 4AP,,{mobile}\r\n"


def spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


async def test_a_file_with_every_outcome_gives_exactly_the_expected_report() -> None:
    world = GpWorld()
    b = world.booking
    invitable = b.person(dt.date(1960, 5, 5))
    by_register_mobile = b.person(dt.date(1970, 1, 1), mobile="+447700900002")
    no_mobile = b.person(dt.date(1980, 2, 2))
    child = b.person(dt.date(2014, 6, 1))
    booked = b.person(dt.date(1955, 3, 3))
    b.patients.people[booked].claims[1] = DoseClaim("ABCD1234", "SITE-A", b.clock.now())
    complete = b.person(dt.date(1960, 1, 1), vaccinations=[
        {"product": "PFIZER", "dose": 1, "administeredAt": "2025-01-01"},
        {"product": "PFIZER", "dose": 2, "administeredAt": "2025-03-01"},
        {"product": "PFIZER", "dose": 3, "administeredAt": "2025-07-01"}])
    unknown = synthetic_nhs_number(700_001)
    differs = b.person(dt.date(1990, 9, 9))
    bad_check = invitable[:9] + str((int(invitable[9]) + 1) % 10)
    text = (HEADER
            + row(spaced(invitable), "1960-05-05", "07700 900001")
            + row(by_register_mobile, "01/01/1970")
            + row(no_mobile, "1980-02-02", family='"O\'Brien, Jr"')
            + "\r\n"  # a blank line: skipped, not a row
            + row(child, "2014-06-01", "07700900004")
            + row(booked, "1955-03-03", "07700900005")
            + row(complete, "1960-01-01", "07700900006")
            + row(unknown, "1950-01-01", "07700900007")
            + row(differs, "1990-09-10", "07700900008")
            + row(invitable, "1960-05-05", "07700900001")
            + row(bad_check, "1960-05-05")
            + row(no_mobile, "31/02/1980"))
    assert await world.upload(text) == "checked"
    assert world.report() == (
        "row,nhsNumber,outcome,reasons,cohort,nextDose,invited\r\n"
        f"1,{invitable},INVITABLE,,5,1,\r\n"
        f"2,{by_register_mobile},INVITABLE,,8,1,\r\n"
        f"3,{no_mobile},ELIGIBLE_NO_MOBILE,,10,1,\r\n"
        f"4,{child},NOT_ELIGIBLE,NO_COHORT;NO_PRODUCT,,1,\r\n"
        f"5,{booked},ALREADY_BOOKED,,4,1,\r\n"
        f"6,{complete},COURSE_COMPLETE,,5,,\r\n"
        f"7,{unknown},NOT_IN_REGISTER,,,,\r\n"
        f"8,{differs},DETAILS_DIFFER,dateOfBirth,,,\r\n"
        f"9,{invitable},DUPLICATE_ROW,same NHS number as an earlier row,,,\r\n"
        f"10,{bad_check},INVALID,nhsNumber: the check digit is wrong,,,\r\n"
        f"11,{no_mobile},INVALID,dateOfBirth: not a real date,,,\r\n")
    (upload,) = await world.uploads.uploads(ODS, PRACTICE_STAFF)
    assert (upload.status, upload.rows, upload.invited) == ("done", 11, 0)
    assert upload.outcomes == {"INVITABLE": 2, "ELIGIBLE_NO_MOBILE": 1, "NOT_ELIGIBLE": 1, "ALREADY_BOOKED": 1,
                               "COURSE_COMPLETE": 1, "NOT_IN_REGISTER": 1, "DETAILS_DIFFER": 1, "DUPLICATE_ROW": 1,
                               "INVALID": 2}
    # Batches of four rows: two register reads for eleven rows, never one per row (the last batch holds only
    # rows the file itself decides: a duplicate and two invalid rows).
    assert world.register.requests.total == 2


@pytest.mark.parametrize(("content", "said"), [
    (b"Surname,Forename,Mobile\r\nSmith,Alex,\r\n",
     'FILE_REJECTED,"MISSING_COLUMNS: NHS Number, Date of Birth, Family Name, Given Name, Postcode"'),
    (b"", "FILE_REJECTED,EMPTY_FILE: the file is empty"),
    (b"\xef\xbb\xbf  \r\n", "FILE_REJECTED,EMPTY_FILE: the file is empty"),
    ("NHS Number,Date of Birth\r\n9990000018,1960-01-01\r\n".encode("utf-16"), "FILE_REJECTED,NOT_UTF8"),
    (b"PK\x03\x04\x00\x00binary", "FILE_REJECTED,NOT_CSV: the file holds NUL characters"),
    (b"NHS Number,NHS Number,Date of Birth,Family Name,Given Name,Postcode\r\n",
     "FILE_REJECTED,DUPLICATE_COLUMNS: NHS Number"),
])
async def test_a_file_that_is_not_a_patient_list_gets_a_report_saying_why_and_nothing_else(
        content: bytes, said: str) -> None:
    world = GpWorld()
    world.files.put(f"{ODS}/bad.csv", content)
    assert await world.uploads.process(f"{ODS}/bad.csv") == "rejected"
    header, line = world.report("bad").splitlines()
    assert header == "row,nhsNumber,outcome,reasons,cohort,nextDose,invited"
    assert said in line
    (upload,) = await world.uploads.uploads(ODS, PRACTICE_STAFF)
    assert upload.status == "rejected" and upload.rows == 0 and upload.problem
    assert world.register.requests.total == 0


async def test_the_same_event_twice_and_the_same_file_twice_give_one_report_and_one_text_each() -> None:
    world = GpWorld()
    world.clinic(capacity=10)
    people = [world.booking.person(dt.date(1960, 5, 5)) for _ in range(3)]
    text = HEADER + "".join(row(n, "1960-05-05", f"0770090010{i}") for i, n in enumerate(people))
    world.files.put(f"{ODS}/list.csv", text.encode())
    first, again = await asyncio.gather(world.uploads.process(f"{ODS}/list.csv"),
                                        world.uploads.process(f"{ODS}/list.csv"), return_exceptions=True)
    # Two deliveries at once: one checks, the other fails so that Event Grid tries it again later.
    assert "checked" in (first, again)
    assert isinstance(again if first == "checked" else first, UploadInProgressError)
    assert await world.uploads.process(f"{ODS}/list.csv") == "unchanged"  # the redelivery, later
    result = await world.invitations.invite(InviteCommand(ODS, "list"), PRACTICE_STAFF)
    assert result.invited == 3
    await world.send_texts()
    # The same file uploaded again (a new ETag): recognised by its content, nothing new happens.
    assert await world.upload(text) == "same-content"
    assert await world.uploads.process(f"{ODS}/list.csv") == "unchanged"
    again_result = await world.invitations.invite(InviteCommand(ODS, "list"), PRACTICE_STAFF)
    assert (again_result.invited, again_result.skipped) == (0, {"ALREADY_INVITED": 3})
    await world.send_texts()
    assert world.reports.commits[f"{ODS}/list.report.csv"] == 3  # the check, then each invitation run
    assert len(world.sender.texts) == 3 and world.sender.attempts == 3
    assert sorted(mobile for mobile, _ in world.sender.texts.values()) == [
        "+447700900100", "+447700900101", "+447700900102"]
    assert all(f"{i},{n},INVITABLE,,5,1,yes" in world.report() for i, n in enumerate(people, 1))


async def test_invitations_are_capped_by_free_places_times_the_factor_and_by_the_limit() -> None:
    world = GpWorld(factor=2.0)
    world.clinic(capacity=3)  # 3 free places x 2 = 6 invitations
    people = [world.booking.person(dt.date(1960, 5, 5)) for _ in range(10)]
    world.files.put(f"{ODS}/a.csv", (HEADER + "".join(row(n, "1960-05-05", f"077009002{i:02d}")
                                                      for i, n in enumerate(people))).encode())
    await world.uploads.process(f"{ODS}/a.csv")
    limited = await world.invitations.invite(InviteCommand(ODS, "a", limit=2), PRACTICE_STAFF)
    assert (limited.invited, limited.capacity, limited.skipped) == (2, 6, {"OVER_LIMIT": 8})
    rest = await world.invitations.invite(InviteCommand(ODS, "a"), ADMIN)
    assert (rest.invited, rest.capacity, rest.skipped) == (4, 4, {"ALREADY_INVITED": 2, "OVER_CAPACITY": 4})
    # A second file with the same people invites nobody again while their invitations are open.
    world.files.put(f"{ODS}/b.csv", (HEADER + "".join(row(n, "1960-05-05", "07700900299") for n in people)).encode())
    await world.uploads.process(f"{ODS}/b.csv")
    assert "yes" in world.report("b")  # the check already shows who holds an open invitation
    second = await world.invitations.invite(InviteCommand(ODS, "b"), PRACTICE_STAFF)
    assert (second.invited, second.capacity, second.skipped) == (0, 0, {"ALREADY_INVITED": 6, "OVER_CAPACITY": 4})
    await world.send_texts()
    assert len(world.sender.texts) == 6
    (upload_a,) = [u for u in await world.uploads.uploads(ODS, PRACTICE_STAFF) if u.file_name == "a"]
    assert upload_a.invited == 6


async def test_another_practice_answers_forbidden_and_a_file_being_checked_cannot_be_invited_yet() -> None:
    world = GpWorld()
    with pytest.raises(Forbidden):
        await world.uploads.uploads(OTHER, PRACTICE_STAFF)
    with pytest.raises(Forbidden):
        await world.invitations.invite(InviteCommand(OTHER, "list"), PRACTICE_STAFF)
    with pytest.raises(NotFound):
        await world.invitations.invite(InviteCommand(ODS, "never-uploaded"), PRACTICE_STAFF)
    assert await world.uploads.uploads(OTHER, ADMIN) == []
    world.files.put(f"{ODS}/slow.csv", (HEADER + row(world.booking.person(), "1960-05-05")).encode())
    checking = asyncio.create_task(world.uploads.process(f"{ODS}/slow.csv"))
    for _ in range(5):
        await asyncio.sleep(0)
    with pytest.raises(ChangedMeanwhile):
        await world.invitations.invite(InviteCommand(ODS, "slow"), PRACTICE_STAFF)
    assert await checking == "checked"


async def invited_world(people: int, places: int) -> tuple[GpWorld, list[str], list[str], str]:
    """A practice with one clinic slot of `places`, and `people` invited (their codes, from their texts)."""
    world = GpWorld(factor=people / places)
    slot = world.clinic(capacity=places)
    numbers = [world.booking.person(dt.date(1960, 5, 5)) for _ in range(people)]
    world.files.put(f"{ODS}/list.csv", (HEADER + "".join(row(n, "1960-05-05", f"0770090{i:04d}")
                                                         for i, n in enumerate(numbers))).encode())
    await world.uploads.process(f"{ODS}/list.csv")
    assert (await world.invitations.invite(InviteCommand(ODS, "list"), PRACTICE_STAFF)).invited == people
    await world.send_texts()
    codes = world.codes()
    assert len(codes) == people
    return world, numbers, codes, slot


async def test_fifty_invited_people_racing_for_ten_places_book_exactly_ten_nobody_twice() -> None:
    world, _, codes, slot = await invited_world(50, 10)
    booking = InvitedBooking(date_of_birth=dt.date(1960, 5, 5), slot_ids=(slot,))

    async def attempt(code: str, key: str) -> str:
        try:
            return (await world.invitations.book(code, booking, key)).reference
        except Exception as error:
            return type(error).__name__

    # Everyone presses twice: once with a key, once with another (a second tab).
    outcomes = await asyncio.gather(*(attempt(code, f"{n}-{tab}") for n, code in enumerate(codes) for tab in "ab"))
    references = [o for o in outcomes if o not in ("SlotFull", "AlreadyBooked")]
    assert len(references) == 10 and len(set(references)) == 10
    assert world.booking.holds.slot(slot).booked == 10
    booked_people = {r.person.nhs_number for r in world.booking.records.records() if r.status == "confirmed"}
    assert len(booked_people) == 10
    world.booking.check_invariants()
    statuses = [(await world.invitations.view(code)).status for code in codes]
    assert statuses.count("booked") == 10 and statuses.count("open") == 40


async def test_booking_by_invitation_replays_an_idempotency_key_and_texts_once() -> None:
    world, _, codes, slot = await invited_world(2, 2)
    booking = InvitedBooking(date_of_birth=dt.date(1960, 5, 5), slot_ids=(slot,))
    first = await world.invitations.book(codes[0], booking, "same-key")
    again = await world.invitations.book(codes[0], booking, "same-key")
    assert again.reference == first.reference and again.status == "confirmed"
    assert first.contact.mobile is not None  # the invitation's mobile, for the confirmation text
    await world.booking.relay.relay()
    confirmations = [e for e in world.booking.publisher.events if e.type == "BookingConfirmed"]
    assert [e.reference for e in confirmations] == [first.reference]
    view = await world.invitations.view(codes[0])
    assert (view.status, view.practice_name, view.ods_code) == ("booked", "Riverside Surgery", ODS)
    listed = await world.invitations.slots(codes[1], SlotRange())
    assert [s.slot_id for s in listed] == [slot] and listed[0].remaining == 1
    with pytest.raises(InvalidRequest):
        await world.invitations.slots(codes[1], SlotRange(first=dt.date(9999, 12, 31)))


async def test_expired_tampered_and_other_practice_codes_are_refused_never_crash() -> None:
    world, _, codes, slot = await invited_world(2, 2)
    elsewhere = world.clinic(capacity=5, ods=OTHER)
    booking = InvitedBooking(date_of_birth=dt.date(1960, 5, 5), slot_ids=(elsewhere,))
    with pytest.raises(NotFound) as other_practice:
        await world.invitations.book(codes[0], booking, None)
    assert other_practice.value.fields[0].field == "appointments[0].slotId"
    national = world.booking.slot(CLINIC, 5, site_id="SITE-A")
    with pytest.raises(NotFound):
        await world.invitations.book(codes[0], InvitedBooking(dt.date(1960, 5, 5), (national,)), None)
    tampered = [codes[0][:-2] + ("AA" if not codes[0].endswith("AA") else "BB"),  # the signature
                codes[0].replace(ODS, OTHER),  # another practice named in a genuine code
                "g1.Y90001.AAAAAAAAAAAAAAAAAAAAAA.zzzzzz.AAAAAAAAAAAAAAAAAAAAAA", "not-a-code", ""]
    for code in tampered:
        with pytest.raises(NotFound):
            await world.invitations.view(code)
        with pytest.raises(NotFound):
            await world.invitations.book(code, InvitedBooking(dt.date(1960, 5, 5), (slot,)), None)
    # A genuine code for somebody the practice never invited names no invitation.
    stranger = world.signer.seal(InvitationClaims(ODS, person_key(synthetic_nhs_number(899_999)),
                                                  world.booking.clock.now() + dt.timedelta(days=1)))
    with pytest.raises(NotFound):
        await world.invitations.view(stranger)
    world.booking.clock.advance(days=15)
    assert (await world.invitations.view(codes[1])).status == "expired"
    with pytest.raises(InvitationExpired):
        await world.invitations.book(codes[1], InvitedBooking(dt.date(1960, 5, 5), (slot,)), None)


async def test_a_wrong_date_of_birth_on_a_code_counts_towards_the_lock_out() -> None:
    world, numbers, codes, slot = await invited_world(1, 1)
    wrong = InvitedBooking(date_of_birth=dt.date(1961, 1, 1), slot_ids=(slot,))
    for _ in range(3):  # the booking world locks after three misses
        with pytest.raises(NotEligible):
            await world.invitations.book(codes[0], wrong, None)
    failures = world.booking.patients.people[numbers[0]].failures
    assert failures is not None and failures.locked_until is not None


def _number(seed: int) -> str:
    """A distinct valid NHS number in the 999 test range for each seed below 500,000."""
    for stem in (f"999{2 * seed:06d}", f"999{2 * seed + 1:06d}"):  # at most one of two neighbours is unusable
        check = 11 - sum(int(d) * w for d, w in zip(stem, (10, 9, 8, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        if check != 10:
            return f"{stem}{check % 11}"
    raise AssertionError("unreachable")


@dataclass
class StoredList:
    """A large list already in storage (built before memory is traced: it is the blob, not the worker's)."""

    data: bytes
    etag: str = "0xBIG"
    chunk_bytes: int = 1 << 18  # as the blob adapter reads (shared/adapters/blob_gp_files.py)

    @classmethod
    def of(cls, rows: int) -> StoredList:
        lines = [HEADER, *(f"{_number(i)},1960-05-05,Smith,Alex,LS1 4AP,,07700900{i % 1000:03d}\r\n"
                           for i in range(rows))]
        return cls("".join(lines).encode())

    async def version(self, blob_name: str) -> BlobVersion | None:
        return BlobVersion(blob_name, self.etag, len(self.data))

    async def chunks(self, blob_name: str, etag: str) -> AsyncIterator[bytes]:
        if etag != self.etag:
            raise FileChangedError("changed")
        for start in range(0, len(self.data), self.chunk_bytes):
            yield self.data[start:start + self.chunk_bytes]


async def check_stored_list(rows: int) -> dict[str, int]:
    """Check a list of `rows` rows already in storage; the worker's resident memory growth while it runs.

    Resident memory is sampled by a thread every few milliseconds from /proc (a fresh process, so memory
    that earlier work freed cannot hide growth); the file is in "storage" before the sampling starts.
    """
    world = GpWorld()
    source = StoredList.of(rows)
    world.reports.keep = False
    checker = ListPass(source, world.register, world.store, world.booking.service._policies,
                       world.booking.clock, person_key)
    uploads = GpUploadService(source, world.reports, world.store, checker,
                              world.uploads._access, world.booking.clock)
    page = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    gc.collect()
    base, peak, done = resident(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], resident())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        handled = await uploads.process(f"{ODS}/big.csv")
    finally:
        done.set()
        sampler.join()
    (upload,) = await world.store.uploads(ODS)
    return {"handled": handled == "checked", "rows": upload.rows, "file": len(source.data),
            "report": world.reports.written, "growth": max(peak[0], resident()) - base,
            "reads": world.register.requests.total, "largest": world.register.largest}


def test_memory_stays_flat_on_a_200000_row_file() -> None:
    # A small list first, in the same fresh process, so that what is allocated once (imports done lazily,
    # the allocator's first pools) is not counted against the big one.
    probe = ("import asyncio, json; from tests.unit.services.test_gp_practices import check_stored_list; "
             "asyncio.run(check_stored_list(20000)); print(json.dumps(asyncio.run(check_stored_list(200000))))")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["handled"] and seen["rows"] == 200_000
    assert seen["file"] > 11_000_000 and seen["report"] > 7_000_000
    # Holding the file would cost its 11 MB as bytes and as much again as text, and its rows several times
    # that; the pass holds one chunk, a few batches and the NHS numbers seen (about 2 bytes each).
    assert seen["growth"] < 4_000_000, f"resident memory grew {seen['growth'] / 1e6:.1f} MB"
    assert seen["largest"] == 1000 and seen["reads"] == 200
