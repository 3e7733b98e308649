"""The waiting room against the Cosmos and Storage emulators: documents, journals, one-time admissions, cost."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from shared import resources
from shared.adapters.clients import Clients, get_clients
from shared.adapters.cosmos_waiting_room import CosmosWaitingRoomStore, _state_doc
from shared.adapters.queue_waiting_room import StorageQueueJoinPublisher
from shared.domain.queue_positions import queue_index
from shared.domain.waiting_room import ClaimSigner, RoomSettings, RoomState, release_floor, seq_at
from shared.ports.common import VersionConflictError
from shared.services.errors import AdmissionRequiredError
from shared.services.waiting_room import AdmissionTimer, JoinRecorder, WaitingRoomService
from tests.conftest import EmulatorEndpoints
from tests.unit.services.fakes import FakeClock

pytestmark = pytest.mark.integration


@dataclass
class CosmosRoom:
    """A waiting room of its own (named documents, its own queue), so tests never meet devhost's."""

    clients: Clients
    store: CosmosWaitingRoomStore
    queue_name: str
    clock: FakeClock
    service: WaitingRoomService
    timer: AdmissionTimer
    recorder: JoinRecorder

    async def deliver(self) -> int:
        """What the joins queue trigger does, over every message on this room's queue."""
        queue = self.clients.queues().get_queue_client(self.queue_name)
        delivered = 0
        async for message in queue.receive_messages(messages_per_page=32):
            await self.recorder.record(base64.b64decode(message.content))
            await queue.delete_message(message)
            delivered += 1
        return delivered

    async def tick(self, seconds: float = 2) -> None:
        self.clock.advance(seconds=seconds)
        await self.deliver()
        await self.timer.advance()


@pytest.fixture
async def room(provisioned: EmulatorEndpoints) -> AsyncIterator[CosmosRoom]:
    clients = get_clients()
    database = clients.database()
    store = CosmosWaitingRoomStore(database.get_container_client(resources.CONFIG.name),
                                   database.get_container_client(resources.WAITING_ROOM.name),
                                   room=f"it-{uuid.uuid4().hex[:12]}")
    queue_name = f"wr-it-{uuid.uuid4().hex[:12]}"
    await clients.queues().create_queue(queue_name)
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    service = WaitingRoomService(store, StorageQueueJoinPublisher(clients, queue_name), clock,
                                 ClaimSigner(b"integration-key"), refresh_seconds=2, report_seconds=5,
                                 join_batch_seconds=0.01)
    yield CosmosRoom(clients, store, queue_name, clock, service, AdmissionTimer(store, clock),
                     JoinRecorder(store, clock))
    await clients.queues().delete_queue(queue_name)


async def switch_on(room: CosmosRoom, rate: int) -> None:
    await room.service.configure(True, rate, "integration")
    room.clock.advance(milliseconds=1)


async def test_settings_and_state_are_replaced_only_by_the_writer_who_read_them(room: CosmosRoom) -> None:
    store = room.store
    first = await store.save_settings(RoomSettings(enabled=True, admit_per_minute=90, version=1), None)
    with pytest.raises(VersionConflictError):
        await store.save_settings(RoomSettings(version=1), None)
    await store.save_settings(RoomSettings(enabled=False, version=2), first)
    with pytest.raises(VersionConflictError):
        await store.save_settings(RoomSettings(version=3), first)
    loaded = await store.load_settings()
    assert loaded is not None and not loaded.settings.enabled and loaded.settings.version == 2

    now = room.clock.now()
    state = RoomState(frontier=seq_at(now), lapsed_here=frozenset({5, 6}), index=queue_index([7, 9, 12]),
                      lost=((8, 8), (10, 11)), tick_seconds=2.5,
                      report_until=None, windows=((now, 7), (now, None)), joined=9, ticked_at=now, ledger_from=now)
    saved = await store.save_state(state, None)
    assert (await store.load_state()) == saved
    with pytest.raises(VersionConflictError):
        await store.save_state(state, None)


async def test_the_state_of_a_million_waiting_stays_small_and_reads_back_exactly(room: CosmosRoom) -> None:
    """The queue index for 1,000,000 waiting and 256 runs of lost numbers, through Cosmos."""
    now = room.clock.now()
    start = seq_at(now - dt.timedelta(hours=2))
    waiting = [start + i * 7_200 for i in range(1_000_000)]  # two hours of joins at 139 a second
    lost = tuple((waiting[i] + 1, waiting[i] + 20) for i in range(0, 1_000_000, 1_000_000 // 256))
    state = RoomState(frontier=start - 1, index=queue_index(waiting), lost=lost, ticked_at=now)
    size = len(json.dumps(_state_doc("x", state), separators=(",", ":")))
    assert size < 100_000, size  # Cosmos DB takes 2 MB
    saved = await room.store.save_state(state, None)
    loaded = await room.store.load_state()
    assert loaded is not None and loaded.state == saved.state
    assert loaded.state.index.below(waiting[500_000]) == pytest.approx(500_000, abs=500_000 / 128)


async def test_join_records_keep_their_sender_and_number(room: CosmosRoom) -> None:
    now = room.clock.now()
    await room.store.record_joins((seq_at(now), seq_at(now) + 1), now, "instance-a", 4)
    await room.store.record_joins((seq_at(now), seq_at(now) + 1), now, "instance-b", 9)  # the same numbers
    await room.store.record_joins((seq_at(now) + 5,), now)
    found = await room.store.joins_since(now - dt.timedelta(seconds=1), now, 0)
    assert sorted((e.source or "", e.number or 0, len(e.seqs)) for e in found) == [
        ("", 0, 1), ("instance-a", 4, 2), ("instance-b", 9, 2)]


async def test_lapsed_sets_and_journals_round_trip(room: CosmosRoom) -> None:
    store = room.store
    assert await store.load_lapsed(42) == frozenset()
    await store.save_lapsed({42: frozenset({1, 2}), 43: frozenset({3})})
    assert await store.load_lapsed(42) == frozenset({1, 2})

    start = room.clock.now()
    await store.record_joins((10, 11, 12), start)
    await store.record_joins((10, 11, 12), start + dt.timedelta(seconds=1))  # delivered twice: one record
    await store.record_joins((20,), start + dt.timedelta(minutes=1))
    joins = await store.joins_since(start, start + dt.timedelta(minutes=2), 0)
    assert sorted(entry.seqs for entry in joins) == [(10, 11, 12), (20,)]
    assert [entry.seqs for entry in await store.joins_since(start, start + dt.timedelta(minutes=2), 12)] == [(20,)]
    await store.record_polls((11,), start + dt.timedelta(seconds=30))
    polls = await store.polls_since(start + dt.timedelta(seconds=20), start + dt.timedelta(minutes=1))
    assert [entry.seqs for entry in polls] == [(11,)]


async def test_an_admission_is_claimed_once_even_by_concurrent_bookings(room: CosmosRoom) -> None:
    jti = uuid.uuid4().hex
    results = await asyncio.gather(*(room.store.claim_admission(jti, dt.timedelta(hours=1)) for _ in range(10)))
    assert sorted(results) == ["claimed"] + ["taken"] * 9
    await room.store.release_admission(jti)
    assert await room.store.claim_admission(jti, dt.timedelta(hours=1)) == "claimed"


async def test_only_the_request_that_claimed_an_admission_may_claim_it_again(room: CosmosRoom) -> None:
    jti = uuid.uuid4().hex
    keep = dt.timedelta(hours=1)
    results = await asyncio.gather(*(room.store.claim_admission(jti, keep, "key-1") for _ in range(5)))
    assert sorted(results) == ["claimed"] + ["reclaimed"] * 4
    assert await room.store.claim_admission(jti, keep, "key-2") == "taken"
    assert await room.store.claim_admission(jti, keep) == "taken"


async def test_a_join_batch_costs_one_counter_increment_one_queue_message_and_one_record(room: CosmosRoom) -> None:
    await switch_on(room, 60)
    counter = room.clients.cosmos_requests
    await room.service.join()  # warms the settings cache and creates the opening's counter
    await room.deliver()
    counter.reset()
    answers = await asyncio.gather(*(room.service.join() for _ in range(50)))
    assert not any(a.admitted for a in answers)
    batches = room.service.joins.messages - 1
    assert 1 <= batches <= 50
    assert counter.total == batches, counter.by_kind  # one patch per batch, however many joins it holds
    assert sorted(a.position for a in answers) == list(range(2, 52))  # one ahead of them all
    counter.reset()
    messages = await room.deliver()
    assert messages == batches
    assert counter.total == messages, counter.by_kind  # one create per message


async def test_concurrent_increments_hand_out_every_number_once(room: CosmosRoom) -> None:
    """Instances taking blocks of numbers at once, the counter not yet created: no number twice, none skipped."""
    opening = seq_at(room.clock.now())
    sizes = [1, 5, 3, 20, 1, 7, 2, 9] * 4
    lasts = await asyncio.gather(*(room.store.take_numbers(opening, size) for size in sizes))
    numbers = sorted(n for last, size in zip(lasts, sizes, strict=True) for n in range(last - size + 1, last + 1))
    assert numbers == list(range(1, sum(sizes) + 1))
    assert await room.store.numbers_taken(opening) == sum(sizes)
    assert await room.store.numbers_taken(opening + 1) == 0


async def test_a_status_poll_makes_no_cosmos_request_once_the_instance_cache_is_warm(room: CosmosRoom) -> None:
    await switch_on(room, 30)
    tickets = [(await room.service.join()).ticket for _ in range(40)]
    for _ in range(5):
        await room.tick()
    answers = [await room.service.status(ticket) for ticket in tickets]  # warm: settings, state
    assert any(a.admitted for a in answers) and not all(a.admitted for a in answers)
    counter = room.clients.cosmos_requests
    counter.reset()
    for _ in range(3):
        for ticket in tickets:
            await room.service.status(ticket)
    assert counter.total == 0, counter.by_kind


async def test_through_the_queue_and_the_timer_a_token_books_once(room: CosmosRoom) -> None:
    await switch_on(room, 600)
    joined = await room.service.join()
    assert not joined.admitted
    for _ in range(2):
        await room.tick()
    answer = await room.service.status(joined.ticket)
    assert answer.admitted and answer.admission_token
    await room.service.consume(answer.admission_token, room.clock.now())
    with pytest.raises(AdmissionRequiredError) as refused:
        await room.service.consume(answer.admission_token, room.clock.now())
    assert refused.value.reason == "used"
    overview = await room.service.overview()
    assert overview.state.joined == 1 and overview.state.admitted == 1


async def test_a_burst_over_three_instances_is_told_the_people_ahead_exactly(room: CosmosRoom) -> None:
    """Through the Cosmos counter and a real queue: 300 joins at once over three instances, before the
    timer has read any; then polls on other instances after a tick with half the admission done."""
    await switch_on(room, 60)
    instances = [room.service, *(
        WaitingRoomService(room.store, StorageQueueJoinPublisher(room.clients, room.queue_name), room.clock,
                           ClaimSigner(b"integration-key"), refresh_seconds=2, join_batch_seconds=0.01)
        for _ in range(2))]
    signer = ClaimSigner(b"integration-key")
    answers = await asyncio.gather(*(instances[i % 3].join() for i in range(300)))
    seqs = sorted(signer.open_ticket(a.ticket, room.clock.now()).seq for a in answers)
    for answer in answers:
        ahead = seqs.index(signer.open_ticket(answer.ticket, room.clock.now()).seq)
        assert answer.position - 1 == ahead
    await room.tick(seconds=10)  # ten passed, released over the next tick
    overview = await room.service.overview()
    assert overview.state.admitted == 10 and overview.state.joined == 300
    room.clock.advance(seconds=1.2)
    floor = release_floor(overview.settings, overview.state, room.clock.now())
    assert seqs[3] < floor < seqs[9]  # about six of the ten released by now
    for i, answer in enumerate(answers[::7]):
        told = await instances[(i + 1) % 3].status(answer.ticket)
        seq = signer.open_ticket(answer.ticket, room.clock.now()).seq
        assert told.admitted == (seq <= floor)
        if not told.admitted:
            assert told.position - 1 == sum(1 for other in seqs if floor < other < seq)
