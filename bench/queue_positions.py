"""How true the waiting room's positions are: every position told against the people really ahead.

Service instances (WaitingRoomService) share one room in the Cosmos DB emulator, under a simulated
clock; the joins queue is held in memory and delivered by the simulation with a latency: most messages
within half a second, one in fifty after ten seconds (a failed delivery retried after the queue's
visibility timeout). The truth for a ticket is
the number of tickets handed out before it (whether or not their joins have reached the timer) that
the stored admission frontier has not passed, as released at the moment it is told (the timer moves
the frontier once a tick and releases what it passed evenly over the next). The error of an answer is
|told - truth| / max(truth, 100): the issue's bound, 2% or 2 places, is an error of at most 0.02.

Joins take their numbers from the opening's counter in the emulator (one patch per batch of joins on
an instance), so the people ahead are counted, not estimated (docs/waiting-room.md).

Scenarios (`make bench` runs them all):
- a burst of 10,000 joins in one second on one instance;
- the same burst over four instances (a load balancer's round robin), the room having been open
  with a trickle of joins for a minute before (a cohort opening while the room is on);
- a steady stream, 10 joins a second at random moments over four instances, for two minutes;
- a cold start: the room opens into the burst over four instances (every answer, from the first);
- the steady stream at a national admission rate (6,000 a minute, 200 joins a second), where half a
  tick's admissions (the granularity of a timer that admits every two seconds) dominates near the
  front: reported apart, since it is the admission step, not the count (docs/waiting-room.md).

`queue_position_error_max` is the largest error over the first four. Admission is 60 a minute
except in the last; the waits told in the steady stream are compared with the time each ticket then
took to be admitted.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.cosmos_waiting_room import CosmosWaitingRoomStore, _state_doc
from shared.domain.queue_positions import queue_index
from shared.domain.waiting_room import ClaimSigner, RoomState, released, released_at
from shared.services.waiting_room import AdmissionTimer, JoinRecorder, QueueAnswer, WaitingRoomService

TICK = 2.0
SLOT = 0.01  # joins arrive in hundredths of a second
RETRIED = 0.02  # messages delivered only after the visibility timeout
VISIBILITY_TIMEOUT = 10.0


@dataclass
class SimulatedClock:
    """Every reading a microsecond later than the last, as distinct real clocks would read."""

    current: dt.datetime

    def now(self) -> dt.datetime:
        self.current += dt.timedelta(microseconds=1)
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)


@dataclass
class HeldQueue:
    """The joins queue: each message is delivered to the queue trigger after its own latency."""

    clock: SimulatedClock
    rng: random.Random
    messages: list[tuple[dt.datetime, str]] = field(default_factory=list)

    async def publish(self, message: str) -> None:
        latency = VISIBILITY_TIMEOUT if self.rng.random() < RETRIED else self.rng.uniform(0.05, 0.5)
        self.messages.append((self.clock.current + dt.timedelta(seconds=latency), message))

    def arrived(self) -> list[str]:
        now = self.clock.current
        arrived = [message for at, message in self.messages if at <= now]
        self.messages = [(at, message) for at, message in self.messages if at > now]
        return arrived


@dataclass
class Tally:
    """Positions told against the truth."""

    answers: int = 0
    worst: float = 0.0
    worst_at: tuple[int, int] = (0, 0)  # (told, truth) of the largest error
    worst_places: int = 0
    worst_places_at: tuple[int, int] = (0, 0)
    within: int = 0  # answers within the bound

    def add(self, told_ahead: int, truth: int) -> None:
        error = abs(told_ahead - truth)
        self.answers += 1
        if error / max(truth, 100) > self.worst:
            self.worst, self.worst_at = error / max(truth, 100), (told_ahead, truth)
        if error > self.worst_places:
            self.worst_places, self.worst_places_at = error, (told_ahead, truth)
        self.within += error <= 0.02 * max(truth, 100)

    def merge(self, other: Tally) -> None:
        self.answers += other.answers
        if other.worst > self.worst:
            self.worst, self.worst_at = other.worst, other.worst_at
        if other.worst_places > self.worst_places:
            self.worst_places, self.worst_places_at = other.worst_places, other.worst_places_at
        self.within += other.within

    def figures(self, name: str) -> dict[str, Any]:
        return {f"{name}_answers": self.answers, f"{name}_error_max": round(self.worst, 4),
                f"{name}_error_max_told_truth": list(self.worst_at), f"{name}_places_max": self.worst_places,
                f"{name}_places_max_told_truth": list(self.worst_places_at),
                f"{name}_within_bound_share": round(self.within / self.answers, 5) if self.answers else None}


@dataclass
class Room:
    store: CosmosWaitingRoomStore
    clock: SimulatedClock
    rng: random.Random
    signer: ClaimSigner = field(default_factory=lambda: ClaimSigner(b"bench-positions"))
    instances: list[WaitingRoomService] = field(default_factory=list)
    issued: list[int] = field(default_factory=list)
    state: RoomState = field(default_factory=RoomState)
    opened_at: int = 0
    tally: Tally = field(default_factory=Tally)
    # seq: (asked at, estimate) for the first estimate each polled ticket was given, and when admitted
    told_waits: dict[int, tuple[dt.datetime, int]] = field(default_factory=dict)
    admitted_at: dict[int, dt.datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.since_tick = 0.0  # the timer runs every TICK, whatever the simulation does meanwhile
        self.queue = HeldQueue(self.clock, self.rng)
        self.timer = AdmissionTimer(self.store, self.clock)
        self.recorder = JoinRecorder(self.store, self.clock)
        self.joined = 0

    def add_instances(self, count: int) -> None:
        for _ in range(count):
            self.instances.append(WaitingRoomService(self.store, self.queue, self.clock, self.signer,
                                                     refresh_seconds=TICK, join_batch_seconds=0))

    async def open(self, admit_per_minute: int) -> None:
        overview = await self.instances[0].configure(True, admit_per_minute, "bench")
        self.opened_at = overview.settings.opened_at
        self.clock.advance(0.001)
        await self.tick()

    def seq(self, answer: QueueAnswer) -> int:
        return self.signer.open_ticket(answer.ticket, self.clock.current).seq

    def truth(self, seq: int) -> int:
        floor = max(released(self.state, self.clock.current), self.opened_at)
        return max(0, bisect.bisect_left(self.issued, seq) - bisect.bisect_right(self.issued, floor))

    def check(self, answer: QueueAnswer, wait: bool = False) -> None:
        if answer.admitted:
            return
        seq = self.seq(answer)
        self.tally.add(answer.position - 1, self.truth(seq))
        if wait:
            self.told_waits.setdefault(seq, (self.clock.current, answer.estimated_wait_seconds))

    async def deliver(self) -> None:
        """The queue trigger over what has arrived."""
        await asyncio.gather(*(self.recorder.record(message.encode()) for message in self.queue.arrived()))

    async def tick(self) -> None:
        """The admission timer (after the queue trigger)."""
        await self.deliver()
        state = await self.timer.advance()
        if state is not None:
            self.state = state
            if not state.lapsed:  # waits are compared while everyone is still there
                for seq in self.told_waits:
                    moment = released_at(seq, state)
                    if moment is not None:
                        self.admitted_at.setdefault(seq, moment)

    async def joins(self, count: int) -> list[str]:
        """`count` joins now, spread over the instances in turn."""
        chosen = [self.instances[(self.joined + i) % len(self.instances)] for i in range(count)]
        self.joined += count
        answers = await asyncio.gather(*(instance.join() for instance in chosen))
        for answer in answers:
            bisect.insort(self.issued, self.seq(answer))
        for answer in answers:
            self.check(answer)
        return [answer.ticket for answer in answers]

    async def poll(self, tickets: Sequence[str], wait: bool = False) -> None:
        for ticket in tickets:
            self.check(await self.rng.choice(self.instances).status(ticket), wait)

    async def run(self, seconds: float, per_second: float, tickets: list[str], random_arrivals: bool = False,
                  poll_sample: int = 0, wait: bool = False) -> None:
        """`seconds` of joins at `per_second` (evenly, or at random moments), the timer every TICK and,
        between ticks, polls of a sample of the tickets handed out."""
        slots, owed = round(seconds / SLOT), 0.0
        poll_at = self.rng.uniform(self.since_tick, TICK)
        for _ in range(slots):
            if random_arrivals:
                count = sum(self.rng.random() < per_second * SLOT / 4 for _ in range(4))
            else:
                owed += per_second * SLOT
                count, owed = int(owed), owed - int(owed)
            if count:
                tickets += await self.joins(count)
            self.clock.advance(SLOT)
            self.since_tick += SLOT
            if any(at <= self.clock.current for at, _ in self.queue.messages):
                await self.deliver()
            if poll_sample and self.since_tick >= poll_at:
                await self.poll(self.sample(tickets, poll_sample), wait)
                poll_at = TICK + 1  # once per tick
            if self.since_tick >= TICK - 1e-9:
                await self.tick()
                self.since_tick, poll_at = 0.0, self.rng.uniform(0, TICK)

    def sample(self, tickets: Sequence[str], size: int) -> list[str]:
        if len(tickets) <= size:
            return list(tickets)
        return [*tickets[:size // 4], *self.rng.sample(tickets[size // 4:-size // 4], size // 2),
                *tickets[-size // 4:]]


def new_room(clients: Any, seed: int) -> Room:
    from shared import resources

    database = clients.database()
    store = CosmosWaitingRoomStore(database.get_container_client(resources.CONFIG.name),
                                   database.get_container_client(resources.WAITING_ROOM.name),
                                   room=f"bench-{uuid.uuid4().hex[:10]}")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return Room(store, SimulatedClock(start), random.Random(seed))


async def burst_on_one_instance(clients: Any) -> Tally:
    room = new_room(clients, 1)
    room.add_instances(1)
    await room.open(60)
    tickets: list[str] = []
    await room.run(1.0, 10_000, tickets)
    await room.run(20.0, 0, tickets, poll_sample=1_000)
    return room.tally


async def burst_on_four_instances(clients: Any) -> Tally:
    """A cohort opens while the room is on: a minute's trickle first (not counted), then the burst."""
    room = new_room(clients, 2)
    room.add_instances(4)
    await room.open(60)
    tickets: list[str] = []
    await room.run(60.0, 2, tickets, poll_sample=100)
    room.tally = Tally()
    await room.run(1.0, 10_000, tickets)
    await room.run(20.0, 0, tickets, poll_sample=1_000)
    return room.tally


async def cold_burst_on_four_instances(clients: Any) -> tuple[Tally, Tally]:
    """The room opens into the burst, nobody having joined before: (the answers at join time, every
    answer in all)."""
    room = new_room(clients, 5)
    room.add_instances(4)
    await room.open(60)
    tickets: list[str] = []
    await room.run(1.0, 10_000, tickets)
    at_join = Tally()
    at_join.merge(room.tally)
    await room.run(20.0, 0, tickets, poll_sample=1_000)
    return at_join, room.tally


async def steady_stream(clients: Any) -> tuple[Tally, list[float]]:
    """Half a minute of the stream first (not counted: the room opening is the cold start above)."""
    room = new_room(clients, 3)
    room.add_instances(4)
    await room.open(60)
    tickets: list[str] = []
    await room.run(30.0, 10, tickets, random_arrivals=True)
    room.tally = Tally()
    await room.run(120.0, 10, tickets, random_arrivals=True, poll_sample=200, wait=True)
    while len(room.admitted_at) < len(room.told_waits) and room.state.waiting and not room.state.lapsed:
        room.clock.advance(TICK)
        await room.tick()
    ratios = [estimate / (room.admitted_at[seq] - at).total_seconds()
              for seq, (at, estimate) in room.told_waits.items()
              if seq in room.admitted_at and (room.admitted_at[seq] - at).total_seconds() >= 20]
    return room.tally, ratios


async def national_rate(clients: Any) -> Tally:
    room = new_room(clients, 4)
    room.add_instances(4)
    await room.open(6_000)
    tickets: list[str] = []
    await room.run(10.0, 200, tickets, random_arrivals=True)
    room.tally = Tally()
    await room.run(20.0, 200, tickets, random_arrivals=True, poll_sample=200)
    return room.tally


async def measure(clients: Any) -> dict[str, Any]:
    started = time.perf_counter()
    one = await burst_on_one_instance(clients)
    four = await burst_on_four_instances(clients)
    steady, ratios = await steady_stream(clients)
    cold_at_join, cold = await cold_burst_on_four_instances(clients)
    fast = await national_rate(clients)
    headline = Tally()
    for tally in (one, four, steady, cold):
        headline.merge(tally)
    # The state document's size with a million waiting, as stored.
    waiting = [i * 7_200 for i in range(1, 1_000_001)]
    state_bytes = len(json.dumps(_state_doc("national-state", RoomState(index=queue_index(waiting)))))

    return {
        "queue_position_error_max": round(headline.worst, 4),
        "queue_position_answers": headline.answers,
        "queue_position_within_bound_share": round(headline.within / headline.answers, 5),
        "queue_position_error_max_burst_one_instance": round(one.worst, 4),
        **one.figures("queue_position_burst_one_instance"),
        **four.figures("queue_position_burst_four_instances"),
        **steady.figures("queue_position_steady_four_instances"),
        **cold_at_join.figures("queue_position_cold_burst_at_join"),
        **cold.figures("queue_position_cold_burst_four_instances"),
        **fast.figures("queue_position_at_6000_per_min"),
        "queue_wait_estimate_ratio_min": round(min(ratios), 3),
        "queue_wait_estimate_ratio_max": round(max(ratios), 3),
        "queue_wait_estimates_compared": len(ratios),
        "waiting_room_state_bytes_at_1m_waiting": state_bytes,
        "queue_positions_bench_s": round(time.perf_counter() - started, 1),
    }
