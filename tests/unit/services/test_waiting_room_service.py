"""The waiting room's use cases on in-memory ports, with a controlled clock: order, estimates, lapses, tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import pytest

from shared.domain.waiting_room import BUCKET_NUMBERS, ClaimRefusedError, ClaimSigner, Refusal, bucket_of
from shared.ports.waiting_room import StoredRoomState
from shared.services.errors import AdmissionRequiredError
from shared.services.waiting_room import AdmissionTimer, JoinRecorder, QueueAnswer, WaitingRoomService
from tests.unit.services.fakes import FakeClock, InMemoryQueue, InMemoryWaitingRoomStore


@dataclass
class Room:
    """One waiting room: its store, queue and clock, with as many instances as a test wants."""

    clock: FakeClock = field(default_factory=FakeClock)
    store: InMemoryWaitingRoomStore = field(default_factory=InMemoryWaitingRoomStore)
    queue: InMemoryQueue = field(default_factory=InMemoryQueue)
    signer: ClaimSigner = field(default_factory=lambda: ClaimSigner(b"unit-test-key"))

    def __post_init__(self) -> None:
        self.timer = AdmissionTimer(self.store, self.clock)
        self.recorder = JoinRecorder(self.store, self.clock)
        self.instances: list[WaitingRoomService] = []
        self.instance = self.new_instance()

    def new_instance(self) -> WaitingRoomService:
        instance = WaitingRoomService(self.store, self.queue, self.clock, self.signer, refresh_seconds=2,
                                      join_batch_seconds=0, report_seconds=5)
        self.instances.append(instance)
        return instance

    async def deliver(self) -> None:
        """The joins queue's trigger, run over everything sent so far."""
        messages, self.queue.messages = self.queue.messages, []
        for message in messages:
            await self.recorder.record(message.encode())

    async def run(self, seconds: float, every: float = 2.0) -> None:
        """Let time pass with the queue trigger and the admission timer running."""
        for _ in range(round(seconds / every)):
            self.clock.advance(seconds=every)
            for instance in self.instances:
                await instance.drain()  # poll reports written in the background (real I/O would yield)
            await self.deliver()
            await self.timer.advance()


async def room_on(room: Room, rate: int) -> None:
    await room.instance.configure(True, rate, "admin")
    room.clock.advance(milliseconds=1)  # joins from the switching instant on are let straight through


# --- joining ----------------------------------------------------------------------------------


async def test_with_the_room_off_a_join_is_admitted_at_once_with_a_token_and_costs_nothing() -> None:
    room = Room()
    answer = await room.instance.join()
    assert answer.admitted and answer.admission_token and answer.position == 0
    assert room.queue.messages == []
    room.store.requests = 0
    await room.instance.join()
    assert room.store.requests == 0  # the settings are cached


async def test_with_the_room_on_a_join_waits_and_costs_one_queue_message() -> None:
    room = Room()
    await room_on(room, 60)
    answer = await room.instance.join()
    assert not answer.admitted and answer.admission_token is None and answer.position == 1
    assert len(room.queue.messages) == 1


async def test_joins_arriving_together_share_one_queue_message() -> None:
    room = Room()
    await room_on(room, 60)
    await asyncio.gather(*(room.instance.join() for _ in range(200)))
    assert len(room.queue.messages) == 1
    await room.deliver()
    assert sum(len(e.seqs) for e in room.store.joins.values()) == 200


async def test_a_message_delivered_twice_is_recorded_once() -> None:
    room = Room()
    await room_on(room, 60)
    await room.instance.join()
    message = room.queue.messages[0]
    room.queue.messages.append(message)
    await room.deliver()
    assert len(room.store.joins) == 1


async def test_a_malformed_message_is_dropped_not_retried() -> None:
    room = Room()
    assert await room.recorder.record(b"not a join") == 0


# --- order ------------------------------------------------------------------------------------


async def test_order_is_kept_under_concurrent_joins_on_several_instances() -> None:
    room = Room()
    await room_on(room, 120)
    instances = [room.instance, room.new_instance(), room.new_instance()]

    async def join(i: int) -> QueueAnswer:
        room.clock.advance(microseconds=i % 7)  # interleaved, sometimes within the same microsecond
        return await instances[i % 3].join()

    answers = await asyncio.gather(*(join(i) for i in range(300)))
    seqs = {a.ticket: room.signer.open_ticket(a.ticket, room.clock.now()).seq for a in answers}
    assert len(seqs) == 300
    # One instance never repeats a number; two instances in the same microsecond may (a tie).
    for k in range(3):
        mine = [seqs[a.ticket] for i, a in enumerate(answers) if i % 3 == k]
        assert len(set(mine)) == len(mine)
    by_join_order = sorted(seqs, key=seqs.__getitem__)
    admitted_at: dict[str, int] = {}
    for step in range(80):
        await room.run(2)
        for ticket in by_join_order:
            if ticket not in admitted_at and (await instances[step % 3].status(ticket)).admitted:
                admitted_at[ticket] = step
        positions = [(await room.instance.status(t)).position for t in by_join_order if t not in admitted_at]
        assert positions == sorted(positions)
    assert len(admitted_at) == 300
    steps = [admitted_at[t] for t in by_join_order]
    assert steps == sorted(steps), "someone was admitted before a person who joined earlier"


# --- estimates --------------------------------------------------------------------------------


async def test_the_estimate_is_within_a_quarter_of_the_wait_at_a_steady_rate() -> None:
    room = Room()
    await room_on(room, 60)  # one a second, while two a second join: the queue grows
    estimates: dict[str, tuple[dt.datetime, int]] = {}
    admitted_at: dict[str, dt.datetime] = {}
    tickets: list[str] = []
    for half_second in range(1200):
        if half_second > 240 and len(admitted_at) == len(tickets):
            break
        room.clock.advance(seconds=0.5)
        if half_second < 240:
            tickets.append((await room.instance.join()).ticket)
        if half_second % 4 == 0:
            await room.deliver()
            await room.timer.advance()
        for ticket in tickets:
            if ticket in admitted_at:
                continue
            answer = await room.instance.status(ticket)
            if answer.admitted:
                admitted_at[ticket] = room.clock.now()
            elif ticket not in estimates and answer.position > 1 and half_second % 4 == 2:
                estimates[ticket] = (room.clock.now(), answer.estimated_wait_seconds)
    ratios = []
    for ticket, (asked, estimate) in estimates.items():
        truth = (admitted_at[ticket] - asked).total_seconds()
        if truth >= 20:
            ratios.append(estimate / truth)
    assert len(ratios) > 100
    assert all(0.75 <= r <= 1.25 for r in ratios), (min(ratios), max(ratios))


# --- lapses -----------------------------------------------------------------------------------


async def test_lapsed_tickets_do_not_slow_admission() -> None:
    room = Room()
    # 40 a minute reports polls ten minutes ahead: everybody here is watched from the first tick.
    await room_on(room, 40)
    tickets = [(await room.instance.join()).ticket for _ in range(400)]
    polling, gone = tickets[1::2], tickets[0::2]

    async def minutes(count: float) -> None:
        for _ in range(round(count * 6)):  # polls every ten seconds by those still there
            await room.run(10)
            for ticket in polling:
                await room.instance.status(ticket)
        await room.instance.drain()

    def live_admitted() -> int:
        state = room.store.state
        assert state is not None
        return state.state.admitted

    await minutes(6)  # everybody who left has lapsed by now
    before = live_admitted()
    await minutes(1.5)
    admitted = live_admitted() - before
    assert 58 <= admitted <= 62  # the configured 40 a minute, not the half of it who are still there
    assert room.store.state is not None and room.store.state.state.lapsed > 0
    # Those who left are told their place lapsed; none was admitted once five minutes had passed.
    answers = [await room.instance.status(ticket) for ticket in gone]
    assert sum(a.lapsed for a in answers) >= 40
    admitted_gone = [i for i, a in enumerate(answers) if a.admitted]
    assert max(admitted_gone) < 120  # the first minutes' admissions, before anybody could lapse


async def test_a_poll_costs_no_store_request_once_the_instance_cache_is_warm() -> None:
    room = Room()
    await room_on(room, 60)
    tickets = [(await room.instance.join()).ticket for _ in range(50)]
    await room.run(20)
    await room.instance.status(tickets[0])
    await room.instance.status(tickets[-1])
    room.store.requests = 0
    for ticket in tickets:
        await room.instance.status(ticket)
    assert room.store.requests == 0


async def test_polls_near_the_front_are_reported_in_one_write_per_interval() -> None:
    room = Room()
    await room_on(room, 60)
    tickets = [(await room.instance.join()).ticket for _ in range(30)]
    await room.run(2)
    room.store.requests = 0
    for _ in range(3):
        for ticket in tickets:
            await room.instance.status(ticket)
        room.clock.advance(seconds=3)
    await room.instance.drain()
    # 90 polls: one report written; the rest is the caches' refresh, two reads per interval.
    assert len(room.store.polls) == 1 and room.store.requests <= 1 + 2 * 3


async def test_a_poll_report_carries_the_time_of_the_polls_not_of_a_later_write() -> None:
    room = Room()
    await room_on(room, 60)
    await room.instance.join()  # joining counts as a poll
    second = (await room.instance.join()).ticket
    polled_at = room.clock.now()
    room.clock.advance(minutes=4)  # the instance hears nothing for four minutes
    await room.instance.status(second)  # this poll writes what was buffered before it
    await room.instance.drain()
    assert room.store.polls and room.store.polls[0].written_at <= polled_at + dt.timedelta(seconds=5)


async def test_concurrent_polls_of_tickets_admitted_in_an_earlier_bucket_read_its_lapsed_set_once() -> None:
    room = Room()
    await room_on(room, 6_000)
    tickets = [(await room.instance.join()).ticket for _ in range(2 * BUCKET_NUMBERS)]
    await room.run(90)
    assert room.store.state is not None
    frontier = room.store.state.state.frontier
    early = [t for t in tickets if bucket_of(room.signer.open_ticket(t, room.clock.now()).seq) < bucket_of(frontier)]
    assert len(early) > 1_000
    fresh = room.new_instance()
    await fresh.status(tickets[-1])  # its settings and state read
    load = room.store.load_lapsed

    async def slow_load(bucket: int) -> frozenset[int]:
        await asyncio.sleep(0.01)  # a real read takes a while: the other polls arrive meanwhile
        return await load(bucket)

    room.store.load_lapsed = slow_load  # type: ignore[method-assign]
    room.store.requests = 0
    answers = await asyncio.gather(*(fresh.status(ticket) for ticket in early[:500]))
    assert all(answer.admitted for answer in answers)
    assert room.store.requests == len({bucket_of(room.signer.open_ticket(t, room.clock.now()).seq)
                                       for t in early[:500]})


# --- the admission token ----------------------------------------------------------------------


async def admitted_token(room: Room) -> str:
    answer = await room.instance.join()
    await room.run(4)
    answer = await room.instance.status(answer.ticket)
    assert answer.admitted and answer.admission_token
    return answer.admission_token


async def test_an_admission_books_once_however_often_its_token_is_reissued() -> None:
    room = Room()
    await room_on(room, 600)
    answer = await room.instance.join()
    await room.run(4)
    first = await room.instance.status(answer.ticket)
    room.clock.advance(seconds=1)
    second = await room.instance.status(answer.ticket)
    assert first.admission_token and second.admission_token and first.admission_token != second.admission_token
    await room.instance.consume(first.admission_token, room.clock.now())
    for replay in (first.admission_token, second.admission_token):
        with pytest.raises(AdmissionRequiredError) as refused:
            await room.instance.consume(replay, room.clock.now())
        assert refused.value.reason == "used"


async def test_a_released_admission_can_book_again() -> None:
    room = Room()
    await room_on(room, 600)
    token = await admitted_token(room)
    await room.instance.consume(token, room.clock.now())
    await room.instance.release(token, room.clock.now())
    await room.instance.consume(token, room.clock.now())


async def test_forged_tampered_expired_and_missing_tokens_are_refused() -> None:
    room = Room()
    await room_on(room, 600)
    token = await admitted_token(room)
    prefix, payload, signature = token.split(".")
    forged = ClaimSigner(b"guessed-key").admission(room.signer.open_admission(token, room.clock.now()))
    cases = {
        "forged": forged,
        "tampered": f"{prefix}.{payload[:-2]}AA.{signature}",
        "missing": None,
        "malformed": "Bearer nonsense",
    }
    for name, value in cases.items():
        with pytest.raises(AdmissionRequiredError):
            await room.instance.consume(value, room.clock.now())
        assert not room.store.used, name
    with pytest.raises(AdmissionRequiredError) as refused:
        await room.instance.consume(token, room.clock.now() + dt.timedelta(minutes=11))
    assert refused.value.reason == "expired"


async def test_a_forged_or_expired_ticket_is_refused_when_polled() -> None:
    room = Room()
    ticket = (await room.instance.join()).ticket
    other = Room(signer=ClaimSigner(b"another"))
    with pytest.raises(ClaimRefusedError) as refused:
        await room.instance.status((await other.instance.join()).ticket)
    assert refused.value.reason is Refusal.FORGED
    room.clock.advance(hours=13)
    with pytest.raises(ClaimRefusedError) as refused:
        await room.instance.status(ticket)
    assert refused.value.reason is Refusal.EXPIRED


# --- the admin setting ------------------------------------------------------------------------


async def test_the_admin_setting_reaches_every_instance_within_the_refresh_interval() -> None:
    room = Room()
    other = room.new_instance()
    assert not await other.required()
    await room_on(room, 60)
    assert await room.instance.required()  # at once where it was changed
    assert not await other.required()  # the other instance still has it cached...
    room.clock.advance(seconds=2)
    assert await other.required()  # ...for at most the refresh interval
    assert not (await other.join()).admitted


async def test_switching_the_room_off_admits_everybody_and_on_again_starts_a_new_queue() -> None:
    room = Room()
    await room_on(room, 1)
    waiting = [(await room.instance.join()).ticket for _ in range(5)]
    await room.run(2)
    assert not (await room.instance.status(waiting[-1])).admitted
    await room.instance.configure(False, None, "admin")
    assert all([(await room.instance.status(t)).admitted for t in waiting])
    await room_on(room, 1)
    with pytest.raises(ClaimRefusedError) as refused:  # joined before the room reopened: joins again, behind
        await room.instance.status(waiting[-1])
    assert refused.value.reason is Refusal.EXPIRED
    assert not (await room.instance.join()).admitted
    overview = await room.instance.overview()
    assert overview.settings.enabled and overview.settings.admit_per_minute == 1 and overview.settings.version == 3


async def test_the_rate_is_what_the_timer_achieves() -> None:
    room = Room()
    await room_on(room, 300)
    for _ in range(2000):
        await room.instance.join()
    await room.run(2)
    before = room.store.state.state.admitted if room.store.state else 0
    await room.run(60)
    assert room.store.state is not None
    assert 295 <= room.store.state.state.admitted - before <= 305


async def test_a_new_timer_rebuilds_from_the_store_and_carries_on() -> None:
    room = Room()
    await room_on(room, 60)
    tickets = [(await room.instance.join()).ticket for _ in range(100)]
    await room.run(20)
    assert room.store.state is not None
    admitted = room.store.state.state.admitted
    room.timer = AdmissionTimer(room.store, room.clock)  # the timer moved to another instance
    await room.run(20)
    assert room.store.state.state.admitted - admitted in range(19, 22)
    assert room.store.state.state.joined == 100
    statuses = [(await room.instance.status(t)).admitted for t in tickets]
    assert statuses == sorted(statuses, reverse=True)


async def test_two_timers_never_both_move_the_frontier() -> None:
    room = Room()
    await room_on(room, 60)
    for _ in range(50):
        await room.instance.join()
    await room.deliver()
    room.clock.advance(seconds=2)
    load = room.store.load_state

    async def slow_load() -> StoredRoomState | None:
        found = await load()
        await asyncio.sleep(0)  # let the rival read the same state before either writes
        return found

    room.store.load_state = slow_load  # type: ignore[method-assign]
    results = await asyncio.gather(room.timer.advance(), AdmissionTimer(room.store, room.clock).advance())
    assert sum(result is not None for result in results) == 1
    assert room.store.state is not None and room.store.state.state.admitted == 2


# --- the room's epoch: tickets from before it opened ------------------------------------------


async def test_tickets_stockpiled_while_the_room_was_off_are_not_admitted_when_it_opens() -> None:
    """The attack: take tickets (and tokens) the night before, while the room is off, and use them the
    moment it opens. They must queue behind everyone who joined since, not go straight through."""
    room = Room()
    stockpile = [await room.instance.join() for _ in range(5)]
    assert all(answer.admitted and answer.admission_token for answer in stockpile)  # off: admitted at once
    room.clock.advance(hours=8)
    await room_on(room, 1)
    queueing = await room.instance.join()
    assert not queueing.admitted
    for answer in stockpile:
        with pytest.raises(ClaimRefusedError) as refused:
            await room.instance.status(answer.ticket)
        assert refused.value.reason is Refusal.EXPIRED  # "join again": behind `queueing`
    # A token handed out before the room opened does not admit either, even one re-issued just before.
    fresh = await room.instance.join()
    assert not fresh.admitted
    with pytest.raises(AdmissionRequiredError) as denied:
        await room.instance.consume(stockpile[0].admission_token, room.clock.now())
    assert denied.value.reason == "expired" and not room.store.used


async def test_a_token_from_an_earlier_opening_does_not_admit_after_the_room_reopens() -> None:
    room = Room()
    await room_on(room, 600)
    token = await admitted_token(room)
    await room.instance.configure(False, None, "admin")
    await room_on(room, 600)
    with pytest.raises(AdmissionRequiredError) as denied:
        await room.instance.check(token, room.clock.now())
    assert denied.value.reason == "expired"
    assert await admitted_token(room)  # a ticket of this opening is admitted as before


async def test_checking_a_token_costs_no_store_request_once_the_settings_are_cached() -> None:
    room = Room()
    await room_on(room, 600)
    token = await admitted_token(room)
    assert await room.instance.check(token, room.clock.now())
    before = room.store.requests
    for bad in (None, "wra1.forged.token", token.replace(".", ".x", 1)):
        with pytest.raises(AdmissionRequiredError):
            await room.instance.check(bad, room.clock.now())
    assert await room.instance.check(token, room.clock.now())
    assert room.store.requests == before


async def test_an_admission_may_be_claimed_again_only_by_the_request_that_claimed_it() -> None:
    room = Room()
    await room_on(room, 600)
    token = await admitted_token(room)
    assert await room.instance.consume(token, room.clock.now(), holder="key-1") is True
    assert await room.instance.consume(token, room.clock.now(), holder="key-1") is False  # its own retry
    for other in ("key-2", None):
        with pytest.raises(AdmissionRequiredError) as refused:
            await room.instance.consume(token, room.clock.now(), holder=other)
        assert refused.value.reason == "used"
