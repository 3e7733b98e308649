"""Timer triggers: NCRONTAB schedules, runOnStartup, past-due runs and the host's schedule monitor."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.timer import TimerRequest
from azure.storage.blob.aio import ContainerClient

from devhost.hostconfig import Invoke
from devhost.ncrontab import CronSchedule, IntervalSchedule
from devhost.queue_triggers import pause

logger = logging.getLogger("devhost")

Clock = Callable[[], dt.datetime]

# A run that starts more than this after its scheduled time is past due (the loop was blocked, the
# previous run overran, or the host was down).
PAST_DUE_TOLERANCE = dt.timedelta(seconds=1)
# Long sleeps are cut into pieces so a changed wall clock is noticed.
_MAX_SLEEP = 60.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass
class TimerListener:
    """One timer-triggered function. Runs are serialised: a run never overlaps the previous one."""

    function_name: str
    schedule: CronSchedule | IntervalSchedule
    invoke: Invoke
    run_on_startup: bool = False
    # Where the schedule monitor keeps Last/Next (azure-webjobs-hosts); None: no monitor.
    monitor: ContainerClient | None = None
    clock: Clock = utc_now
    next_due: dt.datetime | None = None
    last: dt.datetime | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def _status_blob(self) -> str:
        return f"timers/devhost/{self.function_name}/status"

    async def start(self) -> None:
        missed = await self._read_monitor()
        self._task = asyncio.create_task(self._loop(missed), name=f"devhost-timer-{self.function_name}")

    async def stop(self, grace: float) -> None:
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()

    async def _read_monitor(self) -> dt.datetime | None:
        """The occurrence the host missed while it was down, per the stored schedule status."""
        if self.monitor is None:
            return None
        with contextlib.suppress(ResourceExistsError):
            await self.monitor.create_container()
        try:
            stored = await (await self.monitor.download_blob(self._status_blob)).readall()
            status = json.loads(stored)
            recorded_next = dt.datetime.fromisoformat(status["Next"])
            self.last = dt.datetime.fromisoformat(status["Last"]) if status.get("Last") else None
        except ResourceNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            logger.warning("%s: unreadable schedule status; starting afresh", self.function_name)
            return None
        return recorded_next if recorded_next < self.clock() else None

    async def _write_monitor(self) -> None:
        if self.monitor is None:
            return
        status = {"Last": _iso(self.last), "Next": _iso(self.next_due), "LastUpdated": _iso(self.clock())}
        try:
            await self.monitor.upload_blob(self._status_blob, json.dumps(status).encode(), overwrite=True)
        except AzureError as error:
            logger.warning("%s: could not record the schedule status (%s)", self.function_name, error)

    async def _loop(self, missed: dt.datetime | None) -> None:
        async with self._lock:
            if missed is not None:
                logger.info("%s: the run due at %s was missed while the host was down; running it now",
                            self.function_name, missed.isoformat())
                await self._fire(missed, self.clock(), past_due=True)
            elif self.run_on_startup:
                await self._fire(None, self.clock(), past_due=False)
            if self.next_due is None:
                self.next_due = self.schedule.next_after(self.clock())
                await self._write_monitor()
        while not self._stopping.is_set():
            delay = (self.next_due - self.clock()).total_seconds()
            if delay > 0:
                if await pause(self._stopping, min(delay, _MAX_SLEEP)):
                    break
                continue
            await self.tick(self.clock())

    async def tick(self, now: dt.datetime) -> bool:
        """Run the function if it is due at now; True when it ran.

        The scheduler calls this when it wakes; tests call it with a late time to see past_due.
        """
        async with self._lock:
            if self.next_due is None or now < self.next_due:
                return False
            scheduled = self.next_due
            await self._fire(scheduled, now, past_due=now - scheduled > PAST_DUE_TOLERANCE)
            return True

    async def run_now(self) -> None:
        """Run the function once, now, as the admin API does: not past due, and the schedule unchanged.

        Runs are serialised with the scheduled ones, so an admin run never overlaps a scheduled run.
        """
        async with self._lock:
            now = self.clock()
            request = TimerRequest(past_due=False,
                                   schedule_status={"Last": _iso(self.last), "Next": _iso(self.next_due),
                                                    "LastUpdated": _iso(now)},
                                   schedule={"AdjustForDST": True})
            await self.invoke(request)

    async def _fire(self, scheduled: dt.datetime | None, now: dt.datetime, past_due: bool) -> None:
        if past_due:
            late = (now - scheduled).total_seconds() if scheduled else 0.0
            logger.warning("%s: running %.1f s after its scheduled time (past due)", self.function_name, late)
        request = TimerRequest(
            past_due=past_due,
            schedule_status={"Last": _iso(self.last), "Next": _iso(scheduled or now),
                             "LastUpdated": _iso(now)},
            schedule={"AdjustForDST": True},
        )
        # The invocation logs a failure; a failed run does not change the schedule.
        with contextlib.suppress(Exception):
            await self.invoke(request)
        self.last = scheduled or now
        # Counted from the end of the run, as the host does: occurrences missed meanwhile are skipped.
        self.next_due = self.schedule.next_after(max(self.clock(), now))
        await self._write_monitor()
