"""True queue positions: what a ticket is told against the people really ahead of it, in bursts
(one instance, several, cold and warm), a steady stream, a small queue, and a queue read out of order.

The truth is counted from every ticket handed out (whether or not its join has reached the timer)
and the admission frontier as stored at that moment. The bound is the issue's: within 2% or 2 places,
i.e. |told - truth| <= 0.02 * max(truth, 100). Admission here is at most one a second, where half a
tick's admissions (the granularity of a two-second timer, docs/waiting-room.md) is one place.

With several instances, the joins other instances took that the timer had not read when the answering
instance's state was written (U of them ahead of the ticket, estimated as E) can only be estimated:
people arrive at random, so that count is uncertain by about its square root, and the bound is widened
by 3 * sqrt(max(U, E)) (docs/waiting-room.md, "Positions"). On one instance U and E are 0: the bound
is the issue's, exactly.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from shared.domain.queue_positions import unread_joins_before
from shared.domain.waiting_room import RoomSettings, RoomState, admission_floor
from shared.services.waiting_room import AdmissionTimer, QueueAnswer, WaitingRoomService
from tests.unit.services.fakes import FakeClock
from tests.unit.services.test_waiting_room_service import Room, room_on


@dataclass
class SteppingClock(FakeClock):
    """Every reading is a microsecond later: joins "at the same instant" on several instances get
    distinct numbers, as real clocks give them."""

    def now(self) -> dt.datetime:
        self.current += dt.timedelta(microseconds=1)
        return self.current


def bound(truth: int) -> float:
    """The issue's allowance: 2% of the people ahead, and never less than 2 places."""
    return 0.02 * max(truth, 100)


@dataclass
class Audit:
    """Every position told, against the truth at that moment."""

    room: Room
    issued: list[int] = field(default_factory=list)
    worst: float = 0.0  # the largest |told - truth| / max(truth, 100)
    told: int = 0
    misses: list[tuple[int, int, str]] = field(default_factory=list)

    def seq(self, answer: QueueAnswer) -> int:
        return self.room.signer.open_ticket(answer.ticket, self.room.clock.current).seq

    def unread_elsewhere(self, instance: WaitingRoomService, seq: int) -> float:
        """Joins ahead of `seq` that other instances took and the state `instance` answered from does
        not hold (what no instance can count, only estimate), or its estimate of them if larger."""
        state: RoomState = instance._state._value or RoomState()
        settings: RoomSettings = instance._settings._value or RoomSettings()
        floor = admission_floor(settings, state)
        sources = {source.id: source for source in state.sources}
        actual = sum(other.joins.own.unread_between(floor, seq, sources.get(other.joins.own.source))
                     for other in self.room.instances if other is not instance)
        own = instance.joins.own
        estimate = (unread_joins_before(seq, floor, state.sources, own)
                    - own.unread_between(floor, seq, sources.get(own.source)))
        return max(float(actual), estimate)

    def truth(self, seq: int) -> int:
        settings = self.room.store.settings
        assert settings is not None
        state = self.room.store.state.state if self.room.store.state else RoomState()
        floor = admission_floor(settings.settings, state)
        return max(0, bisect.bisect_left(self.issued, seq) - bisect.bisect_right(self.issued, floor))

    def joined(self, answers: Sequence[tuple[WaitingRoomService, QueueAnswer]]) -> None:
        """Tickets just handed out (their answers are checked once all of them count as issued)."""
        for _, answer in answers:
            bisect.insort(self.issued, self.seq(answer))
        for instance, answer in answers:
            self.check(instance, answer, "join")

    def check(self, instance: WaitingRoomService, answer: QueueAnswer, when: str) -> None:
        if answer.admitted:
            return
        seq = self.seq(answer)
        truth = self.truth(seq)
        error = abs(answer.position - 1 - truth)
        self.told += 1
        self.worst = max(self.worst, error / max(truth, 100))
        if error > bound(truth) + 3 * self.unread_elsewhere(instance, seq) ** 0.5:
            self.misses.append((answer.position - 1, truth, when))

    async def poll(self, instances: Sequence[WaitingRoomService], tickets: Sequence[str], when: str,
                   rng: random.Random) -> None:
        for ticket in tickets:
            instance = rng.choice(instances)
            self.check(instance, await instance.status(ticket), when)


async def deliver_some(room: Room, rng: random.Random, share: float = 1.0) -> None:
    """The joins queue's trigger over a random part of what is queued, in no particular order."""
    rng.shuffle(room.queue.messages)
    cut = round(len(room.queue.messages) * share)
    taken, room.queue.messages = room.queue.messages[:cut], room.queue.messages[cut:]
    for message in taken:
        await room.recorder.record(message.encode())


async def tick(room: Room, rng: random.Random, share: float = 1.0) -> None:
    await deliver_some(room, rng, share)
    await room.timer.advance()


async def burst(room: Room, audit: Audit, instances: Sequence[WaitingRoomService], count: int,
                seconds: float, rng: random.Random, ticks_at: Sequence[float] = (), steady: bool = False) -> list[str]:
    """`count` joins over `seconds`, a hundredth of a second at a time, spread over the instances as a
    load balancer would; the queue trigger and the timer run at `ticks_at` (seconds into the burst).
    `steady`: at random moments at that rate (people arriving independently), not evenly spaced."""
    tickets: list[str] = []
    slots = round(seconds * 100)
    pending_ticks = sorted(ticks_at)
    for slot in range(slots):
        if pending_ticks and slot / 100 >= pending_ticks[0]:
            pending_ticks.pop(0)
            await tick(room, rng, share=0.7)  # some messages are still on their way
        if steady:
            share = sum(rng.random() < count / slots / 4 for _ in range(4))
        else:
            share = count * (slot + 1) // slots - count * slot // slots
        chosen = [instances[(len(audit.issued) + i) % len(instances)] for i in range(share)]
        answers = await asyncio.gather(*(instance.join() for instance in chosen))
        audit.joined(list(zip(chosen, answers, strict=True)))
        tickets.extend(answer.ticket for answer in answers)
        room.clock.advance(milliseconds=10)
    return tickets


def sample(tickets: Sequence[str], rng: random.Random, size: int = 400) -> list[str]:
    """The first and last tickets, and a spread between."""
    if len(tickets) <= size:
        return list(tickets)
    return [*tickets[:50], *rng.sample(tickets[50:-50], size - 100), *tickets[-50:]]


async def run_and_poll(room: Room, audit: Audit, instances: Sequence[WaitingRoomService], tickets: Sequence[str],
                       seconds: float, rng: random.Random) -> None:
    """Time passing with the timer ticking every two seconds, polled at odd moments between ticks."""
    for _ in range(round(seconds / 2)):
        start = room.clock.current
        room.clock.advance(seconds=rng.uniform(0.05, 1.95))
        await audit.poll(instances, sample(tickets, rng), "between ticks", rng)
        room.clock.current = start + dt.timedelta(seconds=2)
        await tick(room, rng)
        room.clock.advance(seconds=0.01)
        await audit.poll(instances, sample(tickets, rng, 100), "just after a tick", rng)
        room.clock.current = start + dt.timedelta(seconds=2)


def assert_true_positions(audit: Audit) -> None:
    assert audit.told > 0
    assert not audit.misses, f"{len(audit.misses)} of {audit.told} outside the bound, e.g. {audit.misses[:5]}"


# --- bursts -----------------------------------------------------------------------------------


async def test_a_burst_of_10000_joins_in_one_second_on_one_instance_is_told_true_positions() -> None:
    rng = random.Random(1)
    room = Room(clock=SteppingClock())
    await room_on(room, 60)
    await tick(room, rng)  # the timer was running before the crowd came
    audit = Audit(room)
    tickets = await burst(room, audit, [room.instance], 10_000, 1.0, rng, ticks_at=[0.5])
    await run_and_poll(room, audit, [room.instance], tickets, 12, rng)
    assert_true_positions(audit)
    assert audit.worst <= 0.01
    last = await room.instance.status(tickets[-1])
    assert abs(last.position - 1 - audit.truth(audit.seq(last))) <= 2  # exact to within a place or two


async def test_a_burst_split_across_four_instances_is_told_true_positions_once_their_shares_are_known() -> None:
    rng = random.Random(2)
    room = Room(clock=SteppingClock())
    instances = [room.instance, room.new_instance(), room.new_instance(), room.new_instance()]
    await room_on(room, 60)
    audit = Audit(room)
    # A trickle before the cohort opens: 2 joins a second for half a minute, through the timer.
    trickle: list[str] = []
    for _ in range(15):
        trickle += await burst(room, audit, instances, 4, 2.0, rng)
        await tick(room, rng)
    tickets = await burst(room, audit, instances, 10_000, 1.0, rng, ticks_at=[0.4, 0.9])
    await run_and_poll(room, audit, instances, [*trickle, *tickets], 10, rng)
    assert_true_positions(audit)


async def test_a_cold_burst_across_instances_is_understated_only_until_the_timer_has_read_it() -> None:
    """Nobody has joined yet when the room opens and four instances take a burst: until the timer's
    first tick an instance knows only its own joins, so it tells too small a position (never too
    large); from the first poll after that tick every position is true."""
    rng = random.Random(3)
    room = Room(clock=SteppingClock())
    instances = [room.instance, room.new_instance(), room.new_instance(), room.new_instance()]
    await room_on(room, 60)
    audit = Audit(room)
    tickets = await burst(room, audit, instances, 2_000, 1.0, rng)
    assert audit.misses  # at join time: only this instance's share of those ahead was known
    assert all(told <= truth + 2 and told >= truth / 4 - 2 for told, truth, _ in audit.misses)
    audit.misses.clear()
    room.clock.advance(seconds=1)
    await tick(room, rng)
    room.clock.advance(seconds=2)  # every instance has re-read the state
    await run_and_poll(room, audit, instances, tickets, 6, rng)
    assert_true_positions(audit)


# --- a steady stream, and a small queue -------------------------------------------------------


async def test_a_steady_stream_on_four_instances_is_told_true_positions_and_waits() -> None:
    rng = random.Random(4)
    room = Room(clock=SteppingClock())
    instances = [room.instance, room.new_instance(), room.new_instance(), room.new_instance()]
    await room_on(room, 60)  # one a second, while three a second join: the queue grows
    audit = Audit(room)
    tickets: list[str] = []
    told: dict[int, tuple[dt.datetime, int]] = {}  # the first estimate each ticket was given
    admitted_at: dict[int, dt.datetime] = {}

    async def ticked(share: float) -> None:
        await tick(room, rng, share)
        assert room.store.state is not None
        frontier = room.store.state.state.frontier
        for seq in told:
            if seq <= frontier:
                admitted_at.setdefault(seq, room.clock.current)

    for step in range(90):  # three minutes, the timer every two seconds
        tickets += await burst(room, audit, instances, 6, 2.0, rng, steady=True)
        await ticked(share=0.8)  # a fifth of the messages take longer than a tick
        for ticket in tickets[-60:] if step % 3 == 0 else tickets[-6:]:
            instance = rng.choice(instances)
            answer = await instance.status(ticket)
            audit.check(instance, answer, "poll")
            if not answer.admitted and step < 60:
                told.setdefault(audit.seq(answer), (room.clock.current, answer.estimated_wait_seconds))
    assert_true_positions(audit)
    while len(admitted_at) < len(told):  # until those told an estimate are through
        room.clock.advance(seconds=2)
        await ticked(share=1.0)
    waits = [(estimate, (admitted_at[seq] - at).total_seconds()) for seq, (at, estimate) in told.items()]
    ratios = [estimate / wait for estimate, wait in waits if wait >= 20]
    assert len(ratios) > 100
    assert all(0.75 <= r <= 1.25 for r in ratios), (min(ratios), max(ratios))


async def test_thirty_joining_within_two_seconds_are_each_told_the_people_ahead() -> None:
    """The issue's case: 30 people within two seconds, admission at 6 a minute. The 30th was told
    position 5 and 50 seconds; 29 were ahead and the wait was about 290 seconds."""
    rng = random.Random(5)
    room = Room(clock=SteppingClock())
    await room_on(room, 6)
    await tick(room, rng)
    audit = Audit(room)
    tickets = await burst(room, audit, [room.instance], 30, 2.0, rng, ticks_at=[1.0])
    last = await room.instance.status(tickets[-1])
    assert last.position == 30 and 280 <= last.estimated_wait_seconds <= 300
    await run_and_poll(room, audit, [room.instance], tickets, 20, rng)
    assert_true_positions(audit)
    assert audit.worst <= 0.01  # one place at most


# --- the timer's account of each instance's messages ------------------------------------------


async def test_messages_read_out_of_order_are_counted_once() -> None:
    room = Room(clock=SteppingClock())
    await room_on(room, 6)
    audit = Audit(room)
    for _ in range(20):
        audit.joined([(room.instance, await room.instance.join())])  # twenty messages of one join each
    newest_first = list(reversed(room.queue.messages))
    room.queue.messages = newest_first[10:]  # the ten oldest are still on their way
    for message in newest_first[:10]:
        await room.recorder.record(message.encode())
    state = await room.timer.advance()
    assert state is not None and state.waiting == 10
    [source] = state.sources
    assert source.batches == 0 and [(run.first, run.last) for run in source.runs] == [(11, 20)]
    room.clock.advance(seconds=2)  # the instance re-reads the state
    latest = await room.instance.join()
    audit.joined([(room.instance, latest)])
    assert latest.position == 21  # twenty ahead: ten in the index, ten not read yet, none twice
    await room.deliver()
    state = await room.timer.advance()
    assert state is not None
    [source] = state.sources
    assert source.batches == 21 and not source.runs and source.horizon == max(audit.issued)
    assert not audit.misses


async def test_a_message_the_queue_refused_leaves_no_phantom_and_no_lasting_gap() -> None:
    rng = random.Random(6)
    room = Room(clock=SteppingClock())
    await room_on(room, 6)
    audit = Audit(room)
    for _ in range(5):
        audit.joined([(room.instance, await room.instance.join())])
    publish = room.queue.publish

    async def refuse(message: str) -> None:
        raise ConnectionError("queue unavailable")

    room.queue.publish = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await room.instance.join()  # no ticket handed out: nobody is behind it or ahead of anyone
    room.queue.publish = publish  # type: ignore[method-assign]
    for _ in range(5):
        audit.joined([(room.instance, await room.instance.join())])
    await tick(room, rng)
    assert room.store.state is not None
    [source] = room.store.state.state.sources
    assert source.batches == 5 and [(run.first, run.last) for run in source.runs] == [(7, 11)]
    room.clock.advance(seconds=2)
    latest = await room.instance.join()
    audit.joined([(room.instance, latest)])
    assert latest.position == 11  # ten ahead, every one counted once
    for _ in range(16):  # the gap is given up after GAP_GRACE
        room.clock.advance(seconds=2)
        await tick(room, rng)
    [source] = room.store.state.state.sources
    assert source.batches == 12 and not source.runs
    assert not audit.misses


async def test_a_new_timer_takes_over_the_account_of_every_instance() -> None:
    rng = random.Random(7)
    room = Room(clock=SteppingClock())
    instances = [room.instance, room.new_instance()]
    await room_on(room, 60)
    audit = Audit(room)
    tickets = await burst(room, audit, instances, 400, 1.0, rng, ticks_at=[0.5])
    audit.misses.clear()  # a cold burst across instances (its own test above); here what follows counts
    await tick(room, rng, share=0.5)  # half of what is left still on its way
    room.timer = AdmissionTimer(room.store, room.clock)  # the timer moved to another instance
    await run_and_poll(room, audit, instances, tickets, 8, rng)
    assert_true_positions(audit)
    assert room.store.state is not None and room.store.state.state.joined == 400
