"""Waiting room: 100,000 tickets through the service layer against the emulators.

Measures joins/s and polls/s, Cosmos requests (and queue messages) per join and per poll, the
admission timer's cost per tick, and the admission rate it achieves against the configured one
while a tenth of the tickets have lapsed; then how true the positions told are, in bursts and a
steady stream (bench/queue_positions.py). Prints a final JSON line.

Run: `.venv/bin/python -m bench.waiting_room` (or `make bench`).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import queue_positions
from devhost.launch import start_emulators
from shared import resources
from shared.services.waiting_room import WaitingRoomService

TICKETS = 100_000
JOINERS = 400  # concurrent joins in flight on the one simulated instance
POLLERS = 200
# 200 a second: 100,000 tickets make an eight-minute queue, long enough for lapses to matter
# (a national peak of 500,000 bookings an hour is about 140 a second).
ADMIT_PER_MINUTE = 12_000
GONE_SHARE = 10  # one ticket in ten never polls
SIMULATED_STEP = dt.timedelta(seconds=10)
ADMISSION_SECONDS = 12.0
TICK_SECONDS = 2.0


@dataclass
class OffsetClock:
    """The real clock moved forward at will, so that five minutes of silence take no time to wait for."""

    offset: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


async def poll_all(room: WaitingRoomService, tickets: list[str]) -> None:
    """Every ticket polled once, POLLERS at a time."""
    pending = iter(tickets)

    async def poller() -> None:
        for ticket in pending:
            await room.status(ticket)

    await asyncio.gather(*(poller() for _ in range(POLLERS)))


async def run() -> dict[str, Any]:
    from shared.adapters.azure_provisioning import provision
    from shared.adapters.clients import close_clients, get_clients
    from shared.composition import Services

    clients = get_clients()
    await provision(clients)
    clock = OffsetClock()
    app = Services(clients, clock)
    room, recorder, timer = app.waiting_room, app.waiting_room_joins, app.waiting_room_admission
    cosmos, storage = clients.cosmos_requests, clients.storage_requests

    await room.configure(True, ADMIT_PER_MINUTE, "bench")
    await asyncio.sleep(0.01)
    await timer.advance()  # the timer was already running when the crowd arrived

    # Joins: JOINERS concurrent callers on one instance, as a busy Functions worker would see them.
    cosmos.reset()
    storage.reset()
    tickets: list[str] = []
    numbers = iter(range(TICKETS))

    async def joiner() -> None:
        for _ in numbers:
            tickets.append((await room.join()).ticket)

    started = time.perf_counter()
    await asyncio.gather(*(joiner() for _ in range(JOINERS)))
    join_seconds = time.perf_counter() - started
    join_cosmos, join_storage, messages = cosmos.total, storage.total, room.joins.messages

    # The joins queue's trigger over every message, a batch of 32 at a time as the host runs them.
    queue = clients.queues().get_queue_client(resources.QUEUE_WAITING_ROOM_JOINS)
    cosmos.reset()
    storage.reset()
    started = time.perf_counter()
    recorded = 0
    while True:
        batch = [m async for m in queue.receive_messages(messages_per_page=32, max_messages=32)]
        if not batch:
            break

        async def handle(message: Any) -> int:
            count = await recorder.record(base64.b64decode(message.content))
            await queue.delete_message(message)
            return count

        recorded += sum(await asyncio.gather(*(handle(m) for m in batch)))
    record_seconds = time.perf_counter() - started
    record_cosmos = cosmos.total
    assert recorded == TICKETS, recorded

    # Simulated minutes, ticking every SIMULATED_STEP of clock time: the queue moves, and four
    # minutes in, nine tickets in ten poll (the tenth have gone and lapse at five minutes).
    cosmos.reset()
    started = time.perf_counter()
    await timer.advance()
    crowd_tick_seconds, crowd_tick_cosmos = time.perf_counter() - started, cosmos.total
    polling = [t for i, t in enumerate(tickets) if i % GONE_SHARE]
    poll_seconds, poll_cosmos = 0.0, 0
    while clock.offset < dt.timedelta(minutes=6):
        clock.offset += SIMULATED_STEP
        await timer.advance()
        if clock.offset == dt.timedelta(minutes=4):
            await room.status(polling[0])  # warm the instance's caches
            cosmos.reset()
            started = time.perf_counter()
            await poll_all(room, polling)
            poll_seconds = time.perf_counter() - started
            await room.flush_reports()
            await room.drain()
            poll_cosmos = cosmos.total

    # Admission at the configured rate in real time, ticking every TICK_SECONDS as the Functions timer does.
    before = await room.overview()
    cosmos.reset()
    tick_times: list[float] = []
    ticks = round(ADMISSION_SECONDS / TICK_SECONDS)
    for _ in range(ticks):
        await asyncio.sleep(TICK_SECONDS)
        started = time.perf_counter()
        await timer.advance()
        tick_times.append(time.perf_counter() - started)
    tick_cosmos = cosmos.total / ticks
    after = await room.overview()
    assert before.state.ticked_at and after.state.ticked_at
    span = (after.state.ticked_at - before.state.ticked_at).total_seconds()
    admitted = after.state.admitted - before.state.admitted
    lapsed = after.state.lapsed - before.state.lapsed

    # The timer moved to a new instance: it rebuilds from the stored state and the journals.
    cosmos.reset()
    started = time.perf_counter()
    assert await Services(clients, clock).waiting_room_admission.advance() is not None
    rebuild_seconds, rebuild_cosmos = time.perf_counter() - started, cosmos.total
    # The state document every instance reads every two seconds, as stored with this queue.
    container = clients.database().get_container_client(resources.WAITING_ROOM.name)
    state_bytes = len(json.dumps(await container.read_item("national-state", partition_key="national-state")))
    positions = await queue_positions.measure(clients)
    await close_clients()
    return {
        "benchmark": "waiting_room",
        "tickets": TICKETS,
        "joins_per_s": round(TICKETS / join_seconds),
        "join_queue_messages_per_join": round(messages / TICKETS, 4),
        "join_cosmos_requests_per_join": round(join_cosmos / TICKETS, 4),
        "join_storage_requests_per_join": round(join_storage / TICKETS, 4),
        "queue_trigger_joins_per_s": round(TICKETS / record_seconds),
        "queue_trigger_cosmos_writes_per_join": round(record_cosmos / TICKETS, 4),
        "polls_per_s": round(len(polling) / poll_seconds),
        "poll_cosmos_requests_per_poll": round(poll_cosmos / len(polling), 5),
        "poll_cosmos_requests_total": poll_cosmos,
        "timer_tick_after_100k_joins_s": round(crowd_tick_seconds, 2),
        "timer_tick_after_100k_joins_cosmos_requests": crowd_tick_cosmos,
        "timer_rebuild_s": round(rebuild_seconds, 2),
        "timer_rebuild_cosmos_requests": rebuild_cosmos,
        "timer_tick_p50_ms": round(sorted(tick_times)[len(tick_times) // 2] * 1000, 1),
        "timer_cosmos_requests_per_tick": round(tick_cosmos, 1),
        "admit_per_minute_configured": ADMIT_PER_MINUTE,
        "admit_per_minute_achieved": round(admitted / span * 60) if span else 0,
        "lapsed_passed_while_admitting": lapsed,
        "waiting_after": after.state.waiting,
        "state_document_bytes": state_bytes,
        **positions,
    }


def main() -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        emulators = start_emulators(Path(tmp), database="vaccination-bench")
        saved = {key: os.environ.get(key) for key in emulators.environment}
        try:
            os.environ.update(emulators.environment)
            from shared.settings import reset_settings

            reset_settings()
            result = asyncio.run(run())
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            emulators.stop()
    result["bench_seconds"] = round(time.monotonic() - started, 1)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
