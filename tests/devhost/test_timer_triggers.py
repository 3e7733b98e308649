"""devhost's timer triggers: NCRONTAB, runOnStartup, past_due, no overlap, the schedule monitor."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time

import pytest
from azure.storage.blob.aio import BlobServiceClient

from devhost.blob_triggers import HOSTS_CONTAINER
from devhost.ncrontab import CronSchedule, parse_schedule
from tests.conftest import EmulatorEndpoints
from tests.devhost.sample_app import events, eventually, running_host

UTC = dt.UTC


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/1 * * * * *", at(2024, 1, 1, 0, 0, 0), [at(2024, 1, 1, 0, 0, 1), at(2024, 1, 1, 0, 0, 2)]),
        ("0 */5 * * * *", at(2024, 1, 1, 0, 3, 10), [at(2024, 1, 1, 0, 5), at(2024, 1, 1, 0, 10)]),
        ("15,45 30 9 * * *", at(2024, 1, 1, 9, 30, 20), [at(2024, 1, 1, 9, 30, 45), at(2024, 1, 2, 9, 30, 15)]),
        # Day of month AND day of week, as NCrontab reads them: the first Monday of the month.
        ("0 0 9 1-7 * Mon", at(2024, 1, 2), [at(2024, 2, 5, 9), at(2024, 3, 4, 9)]),
        ("0 0 0 29 Feb *", at(2024, 3, 1), [at(2028, 2, 29), at(2032, 2, 29)]),
        ("0 30 2 * Jan-Mar Sun", at(2024, 3, 30), [at(2024, 3, 31, 2, 30), at(2025, 1, 5, 2, 30)]),
        ("10/20 * * * * *", at(2024, 1, 1), [at(2024, 1, 1, 0, 0, 10), at(2024, 1, 1, 0, 0, 30)]),
        ("00:00:30", at(2024, 1, 1), [at(2024, 1, 1, 0, 0, 30), at(2024, 1, 1, 0, 1)]),
    ],
)
def test_ncrontab_next_occurrences(expression: str, after: dt.datetime, expected: list[dt.datetime]) -> None:
    schedule = parse_schedule(expression)
    first = schedule.next_after(after)
    assert [first, schedule.next_after(first)] == expected


@pytest.mark.parametrize(
    "expression", ["* * * * *", "60 * * * * *", "0 0 0 30 2 *", "0 0 0 * * 7", "0 0 0 * * Funday", "0 5-1 * * * *"]
)
def test_ncrontab_rejects_invalid_expressions(expression: str) -> None:
    with pytest.raises(ValueError):
        CronSchedule.parse(expression)


async def test_timer_fires_on_its_schedule(emulators: EmulatorEndpoints) -> None:
    async with running_host(emulators.storage_connection_string, "every_second"):
        started = len(events("every_second"))
        await eventually(lambda: len(events("every_second")) >= started + 3, timeout=5, what="three ticks")
    runs = events("every_second")[started:]
    assert not any(run["past_due"] for run in runs)
    walls = [run["wall"] for run in runs]
    # Each run starts just after a whole second, one second apart.
    assert all(wall.microsecond < 300_000 for wall in walls)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(walls)]
    assert all(0.7 < gap < 1.3 for gap in gaps), gaps


async def test_run_on_startup_runs_at_once_and_then_waits_for_the_schedule(
    emulators: EmulatorEndpoints,
) -> None:
    before = len(events("yearly_on_startup"))
    started = time.monotonic()
    async with running_host(emulators.storage_connection_string, "yearly_on_startup") as host:
        await eventually(lambda: len(events("yearly_on_startup")) > before, timeout=2, what="the startup run")
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(0.3)
        next_due = host.timer("yearly_on_startup").next_due
    runs = events("yearly_on_startup")[before:]
    assert [run["past_due"] for run in runs] == [False]
    assert next_due is not None and (next_due.month, next_due.day, next_due.hour) == (1, 1, 0)


async def test_run_that_starts_late_is_past_due_and_one_on_time_is_not(emulators: EmulatorEndpoints) -> None:
    async with running_host(emulators.storage_connection_string, "nightly") as host:
        timer = host.timer("nightly")
        await eventually(lambda: timer.next_due is not None, what="a schedule")
        due = timer.next_due
        assert due is not None and due.hour == 3
        before = len(events("nightly"))
        assert await timer.tick(due - dt.timedelta(seconds=1)) is False  # not yet due
        assert await timer.tick(due + dt.timedelta(milliseconds=200)) is True
        late_due = timer.next_due
        assert late_due is not None and late_due > due
        assert await timer.tick(late_due + dt.timedelta(minutes=5)) is True  # as after a blocked loop
    assert [run["past_due"] for run in events("nightly")[before:]] == [False, True]


async def test_blocked_event_loop_makes_the_next_run_past_due(emulators: EmulatorEndpoints) -> None:
    async with running_host(emulators.storage_connection_string, "every_second"):
        start = len(events("every_second"))
        await eventually(lambda: len(events("every_second")) > start, timeout=3, what="a first tick")
        blocked_from = len(events("every_second"))
        time.sleep(2.5)  # blocks the event loop, and so the scheduler, past two occurrences
        await eventually(lambda: len(events("every_second")) > blocked_from, timeout=3, what="the late tick")
        await eventually(lambda: len(events("every_second")) > blocked_from + 1, timeout=3, what="a tick after")
    after_block = events("every_second")[blocked_from:]
    assert after_block[0]["past_due"] is True
    assert after_block[1]["past_due"] is False  # back on schedule: missed occurrences are not replayed
    assert not any(run["past_due"] for run in events("every_second")[start:blocked_from])


async def test_timer_run_never_overlaps_itself(emulators: EmulatorEndpoints) -> None:
    async with running_host(emulators.storage_connection_string, "slow_timer") as host:
        await eventually(lambda: len(events("slow_timer_end")) >= 2, timeout=6, what="two runs")
        # Two ticks at once, as if the scheduler and a late wake-up raced: one run, not two.
        timer = host.timer("slow_timer")
        due = timer.next_due
        assert due is not None
        results = await asyncio.gather(timer.tick(due + dt.timedelta(seconds=2)),
                                       timer.tick(due + dt.timedelta(seconds=2)))
        assert sorted(results) == [False, True]
    starts = [e["at"] for e in events("slow_timer_start")]
    ends = [e["at"] for e in events("slow_timer_end")]
    assert len(starts) == len(ends)
    for later_start, earlier_end in zip(starts[1:], ends, strict=False):
        assert later_start >= earlier_end, "a run started before the previous one ended"


async def test_schedule_monitor_runs_an_occurrence_missed_while_down_as_past_due(
    emulators: EmulatorEndpoints,
) -> None:
    now = dt.datetime.now(UTC)
    missed = {"Last": (now - dt.timedelta(days=2)).isoformat(), "Next": (now - dt.timedelta(days=1)).isoformat(),
              "LastUpdated": (now - dt.timedelta(days=2)).isoformat()}
    async with BlobServiceClient.from_connection_string(emulators.storage_connection_string) as service:
        hosts = service.get_container_client(HOSTS_CONTAINER)
        if not await hosts.exists():
            await hosts.create_container()
        status_blob = "timers/devhost/nightly/status"
        await hosts.upload_blob(status_blob, json.dumps(missed).encode(), overwrite=True)
        before = len(events("nightly"))
        async with running_host(emulators.storage_connection_string, "nightly"):
            await eventually(lambda: len(events("nightly")) > before, timeout=3, what="the missed run")
            await asyncio.sleep(0.3)
        (run,) = events("nightly")[before:]
        assert run["past_due"] is True
        assert run["status"]["Last"] == missed["Last"]
        status = json.loads(await (await hosts.download_blob(status_blob)).readall())
        assert dt.datetime.fromisoformat(status["Next"]) > now  # the next run is in the future again
