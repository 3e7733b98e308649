"""The virtual waiting room: join, poll, admission by a timer, and the admission token that books once."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.domain.audit import AuditAction
from shared.domain.queue_positions import NumberAccount, Ranges, merged, numbered
from shared.domain.waiting_room import (
    LAPSE_AFTER,
    AdmissionClaims,
    ClaimRefusedError,
    ClaimSigner,
    Refusal,
    RoomSettings,
    RoomState,
    SequenceSource,
    TicketClaims,
    admission_floor,
    admissions_due,
    advance,
    after_tick,
    join_message,
    lapsed_bucket_needed,
    moment_of,
    of_this_opening,
    read_join_batch,
    room_epoch,
    should_report,
    standing,
)
from shared.ports.common import Clock, VersionConflictError
from shared.ports.waiting_room import JoinPublisher, JournalEntry, WaitingRoomStore
from shared.services.audit import AuditService, audited
from shared.services.errors import AdmissionRequiredError, RateLimitedError
from shared.services.refresh import Refreshing
from shared.services.throttle import ClientThrottle

log = logging.getLogger("shared.services.waiting_room")

T = TypeVar("T")

# Records are stamped with their writer's clock before they are committed, so the timer reads a
# little behind its last read; ids seen before are skipped.
JOURNAL_MARGIN = dt.timedelta(seconds=30)
# Lapsed sets of buckets admission has left never change again, so an instance keeps them.
ARCHIVE_CACHE_BUCKETS = 4096
MAX_JOIN_BATCH = 1000
# A timer starting afresh reads join records back at most this far (a ticket lives 12 hours by default).
MAX_REBUILD = dt.timedelta(hours=12)


class JoinBatcher:
    """Joins arriving together on one instance share one block of numbers and one queue message.

    A batch takes its numbers from the opening's counter (one atomic increment, so numbers follow
    join order across instances and none is handed out twice), then puts them on the queue; each
    join returns its sequence number only once its message is on the queue, so a ticket handed out
    is never lost. The cost of a join is at most one counter increment and one message, and far less
    when joins crowd in. Numbers whose message could not be sent are remembered (`voided`): nobody
    holds them, and this instance leaves them out of positions at once.
    """

    def __init__(self, store: WaitingRoomStore, publisher: JoinPublisher, window_seconds: float,
                 max_batch: int = MAX_JOIN_BATCH) -> None:
        self._store = store
        self._publisher = publisher
        self._window = window_seconds
        self._max = max_batch
        self._pending: list[asyncio.Future[int]] = []
        self._opening = 0
        self._timer: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.messages = 0
        self.voided: Ranges = ()

    async def add(self, opening: int) -> int:
        """A join in the room opened at `opening`: its sequence number, once its message is queued."""
        if self._pending and opening != self._opening:
            self._send_pending()  # the room reopened meanwhile: numbers of one opening per batch
        self._opening = opening
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(waiter)
        if len(self._pending) >= self._max:
            self._send_pending()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._send_after_window())
        return await waiter

    async def _send_after_window(self) -> None:
        await asyncio.sleep(self._window)
        self._timer = None
        self._send_pending()

    def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._send(batch, self._opening))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[asyncio.Future[int]], opening: int) -> None:
        self.messages += 1
        try:
            last = await self._store.take_numbers(opening, len(batch))
        except Exception as error:
            # Numbers may have been taken all the same (an answer lost on the way): the timer finds
            # that gap and publishes it as lost.
            self._fail(batch, error)
            return
        seqs = numbered(opening, last, len(batch))
        try:
            await self._publisher.publish(join_message(seqs))
        except Exception as error:
            self.voided = merged(self.voided, ((seqs[0], seqs[-1]),))  # refused: nobody holds these
            self._fail(batch, error)
            return
        for waiter, seq in zip(batch, seqs, strict=True):
            if not waiter.done():
                waiter.set_result(seq)

    @staticmethod
    def _fail(batch: list[asyncio.Future[int]], error: Exception) -> None:
        for waiter in batch:
            if not waiter.done():
                waiter.set_exception(error)

    def forget_through(self, floor: int) -> None:
        """Admission has passed `floor`: voided numbers up to it no longer matter."""
        if self.voided and self.voided[0][0] <= floor:
            self.voided = tuple((max(first, floor + 1), last) for first, last in self.voided if last > floor)


@dataclass(frozen=True)
class QueueAnswer:
    """What a join or a poll tells the ticket's holder."""

    ticket: str
    position: int
    estimated_wait_seconds: int
    admitted: bool
    admission_token: str | None = None
    lapsed: bool = False


@dataclass(frozen=True)
class RoomOverview:
    settings: RoomSettings
    state: RoomState


class WaitingRoomService:
    """Join and poll (no store request once the instance's caches are warm), the admin settings, and
    the admission gate booking calls. One per instance (event loop): it holds those caches."""

    def __init__(self, store: WaitingRoomStore, publisher: JoinPublisher, clock: Clock, signer: ClaimSigner, *,
                 refresh_seconds: float = 2.0, token_ttl: dt.timedelta = dt.timedelta(minutes=10),
                 ticket_ttl: dt.timedelta = dt.timedelta(hours=12), report_seconds: float = 5.0,
                 join_batch_seconds: float = 0.02, throttle: ClientThrottle | None = None,
                 new_id: Callable[[], str] = lambda: secrets.token_urlsafe(16),
                 audit: AuditService | None = None) -> None:
        self._audit = audit
        self._store = store
        self._clock = clock
        self._signer = signer
        self._token_ttl = token_ttl
        self._ticket_ttl = ticket_ttl
        self._report_interval = dt.timedelta(seconds=report_seconds)
        self._throttle = throttle
        self._new_id = new_id
        self._settings = Refreshing(self._load_settings, refresh_seconds, clock, what="waiting-room settings")
        self._state = Refreshing(self._load_state, refresh_seconds, clock, what="waiting-room state")
        self._archive: OrderedDict[int, frozenset[int]] = OrderedDict()
        # One read per bucket however many polls want it at once.
        self._archive_loading: dict[int, asyncio.Future[frozenset[int]]] = {}
        self._sequence = SequenceSource()
        self.joins = JoinBatcher(store, publisher, join_batch_seconds)
        self._reports: set[int] = set()
        self._report_due: dt.datetime | None = None
        self._last_report: dt.datetime | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def _load_settings(self) -> RoomSettings:
        stored = await self._store.load_settings()
        return stored.settings if stored else RoomSettings()

    async def _load_state(self) -> RoomState:
        stored = await self._store.load_state()
        return stored.state if stored else RoomState()

    # --- citizens ---------------------------------------------------------------------------

    async def join(self, client: str | None = None) -> QueueAnswer:
        """A signed ticket; with the room off, admitted at once. With it on, costs at most one counter
        increment and one queue message (one of each per batch of joins arriving together)."""
        if self._throttle is not None and client is not None:
            wait = self._throttle.retry_after(client)
            if wait:
                raise RateLimitedError(wait)
        now = self._clock.now()
        settings = await self._settings.get()
        seq = await self.joins.add(settings.opened_at) if settings.enabled else self._sequence.next(now)
        claims = TicketClaims(ticket_id=self._new_id(), seq=seq, issued_at=now,
                              expires_at=now + self._ticket_ttl, epoch=room_epoch(settings))
        return await self._answer(self._signer.ticket(claims), claims, settings, self._clock.now())

    async def status(self, ticket: str) -> QueueAnswer:
        """Where the ticket stands; raises ClaimRefusedError for a forged, tampered or expired one.

        A ticket from before the room last opened counts as expired (its holder joins again, behind
        everyone queueing): otherwise tickets taken while the room was off, each admitted at once and
        valid for hours, could be stockpiled and all be admitted the moment it opens.
        """
        now = self._clock.now()
        claims = self._signer.open_ticket(ticket, now)
        settings = await self._settings.get()
        if not of_this_opening(claims.epoch, settings):
            raise ClaimRefusedError(Refusal.EXPIRED)
        return await self._answer(ticket, claims, settings, now)

    async def _answer(self, ticket: str, claims: TicketClaims, settings: RoomSettings,
                      now: dt.datetime) -> QueueAnswer:
        state = await self._state.get() if settings.enabled else RoomState()
        bucket = lapsed_bucket_needed(claims.seq, settings, state)
        archived = await self._archived(bucket) if bucket is not None else frozenset()
        self.joins.forget_through(admission_floor(settings, state))
        found = standing(claims.seq, settings, state, archived, now=now, voided=self.joins.voided)
        if found.admitted:
            token = self._signer.admission(AdmissionClaims(jti=claims.ticket_id, seq=claims.seq, issued_at=now,
                                                           expires_at=now + self._token_ttl, epoch=claims.epoch))
            return QueueAnswer(ticket, 0, 0, admitted=True, admission_token=token)
        if not found.lapsed and should_report(claims.seq, settings, state):
            self._report(claims.seq, now)
        return QueueAnswer(ticket, found.position, found.estimated_wait_seconds, admitted=False, lapsed=found.lapsed)

    async def _archived(self, bucket: int) -> frozenset[int]:
        found = self._archive.get(bucket)
        if found is not None:
            self._archive.move_to_end(bucket)
            return found
        loading = self._archive_loading.get(bucket)
        if loading is None:
            loading = asyncio.ensure_future(self._load_archived(bucket))
            self._archive_loading[bucket] = loading
        # Shielded: one poll giving up must not cancel the read the others are waiting for.
        return await asyncio.shield(loading)

    async def _load_archived(self, bucket: int) -> frozenset[int]:
        try:
            found = await self._store.load_lapsed(bucket)
        finally:
            self._archive_loading.pop(bucket, None)
        self._archive[bucket] = found
        if len(self._archive) > ARCHIVE_CACHE_BUCKETS:
            self._archive.popitem(last=False)
        return found

    def _report(self, seq: int, now: dt.datetime) -> None:
        """Remember that this ticket was polled; the instance writes what it saw once per interval,
        in the background, so that no poll waits for a store."""
        if self._report_due is not None and now >= self._report_due:
            self._in_background(self._write_reports(*self._take_reports()))
        self._reports.add(seq)
        self._last_report = now
        if self._report_due is None:
            self._report_due = now + self._report_interval

    def _take_reports(self) -> tuple[tuple[int, ...], dt.datetime]:
        # Stamped with the latest poll they hold: all of them fall within one interval of it.
        taken = (tuple(sorted(self._reports)), self._last_report or self._clock.now())
        self._reports, self._report_due, self._last_report = set(), None, None
        return taken

    async def _write_reports(self, seqs: tuple[int, ...], polled_at: dt.datetime) -> None:
        if not seqs:
            return
        try:
            await self._store.record_polls(seqs, polled_at)
        except Exception:
            # Kept for the next report (with a later stamp, the lesser error) rather than letting
            # those tickets look gone.
            self._reports.update(seqs)
            raise

    async def flush_reports(self) -> None:
        """Write the polls this instance saw since its last report now (hosts at shutdown, tests)."""
        await self._write_reports(*self._take_reports())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("waiting room: poll report not written (%s); retried with the next",
                        type(task.exception()).__name__)

    async def drain(self) -> None:
        """Wait for background reports (hosts at shutdown, tests, benchmarks)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- booking ----------------------------------------------------------------------------

    async def required(self) -> bool:
        """Whether booking needs an admission token now (the room is on)."""
        return (await self._settings.get()).enabled

    async def check(self, token: str | None, now: dt.datetime) -> bool:
        """Whether booking needs an admission now; if it does, the token must be one this room signed,
        in date and of its current opening, or AdmissionRequiredError is raised. No store request once
        the settings are cached, so a request without a usable token costs the stores nothing."""
        settings = await self._settings.get()
        if not settings.enabled:
            return False
        self._verified(token, now, settings)
        return True

    def _verified(self, token: str | None, now: dt.datetime, settings: RoomSettings) -> AdmissionClaims:
        try:
            claims = self._signer.open_admission(token, now)
        except ClaimRefusedError as refused:
            raise AdmissionRequiredError(refused.reason.value) from None
        if not of_this_opening(claims.epoch, settings):
            raise AdmissionRequiredError(Refusal.EXPIRED.value)  # given before the room last opened
        return claims

    async def consume(self, token: str | None, now: dt.datetime, holder: str | None = None) -> bool:
        """Use an admission once: one conditional create keyed by its id. Raises AdmissionRequiredError.

        `holder` names the request using it (a booking's Idempotency-Key): a retry of that same
        request may claim it again, so that a crash or a double submit can finish what it started;
        False then (this call did not newly claim it, so it must not give it back either).
        """
        claims = self._verified(token, now, await self._settings.get())
        # Tokens are re-issued to an admitted ticket until it expires, so the marker outlives them all.
        outcome = await self._store.claim_admission(claims.jti, self._ticket_ttl + self._token_ttl, holder)
        if outcome == "taken":
            raise AdmissionRequiredError("used")
        return outcome == "claimed"

    async def release(self, token: str, now: dt.datetime) -> None:
        """Give back an admission consumed for a booking that did not happen (a full slot, say)."""
        try:
            claims = self._signer.open_admission(token, now)
        except ClaimRefusedError:
            return
        await self._store.release_admission(claims.jti)

    # --- NationalAdmin ----------------------------------------------------------------------

    async def configure(self, enabled: bool, admit_per_minute: int | None, by: str) -> RoomOverview:
        """Switch the room and set its rate (None keeps it); every instance follows within its refresh interval."""
        previous = await self._store.load_settings()
        current = previous.settings if previous else RoomSettings()
        numbered_to = 0
        if enabled and not current.enabled and current.opened_at:
            # Opening again: the new opening's numbers start above every one the last handed out.
            numbered_to = current.opened_at + await self._store.numbers_taken(current.opened_at)
        saved = await self._store.save_settings(
            current.changed(enabled, admit_per_minute, self._clock.now(), by, numbered_to), previous)
        self._settings.put(saved.settings)
        await audited(self._audit, AuditAction.WAITING_ROOM_CHANGED, by)
        return RoomOverview(saved.settings, await self._load_state())

    async def overview(self) -> RoomOverview:
        settings, state = await asyncio.gather(self._load_settings(), self._load_state())
        return RoomOverview(settings, state)


class JoinRecorder:
    """The joins queue's handler: writes each message's batch to the join journal, once."""

    def __init__(self, store: WaitingRoomStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(self, body: bytes | str) -> int:
        try:
            batch = read_join_batch(body)
        except ValueError:
            # Retrying cannot mend it, so it is dropped rather than poisoning the queue.
            log.warning("waiting room: a join message that is not one was dropped")
            return 0
        if batch.seqs:
            await self._store.record_joins(batch.seqs, self._clock.now(), batch.source, batch.number)
        return len(batch.seqs)


class AdmissionTimer:
    """Advances admission at the configured rate, in join order, passing lapsed tickets.

    It keeps the waiting tickets and the polls reported near the front in memory and reads only
    what was written since its last tick; on a new instance (or after another writer) it rebuilds
    from the stored state. The Functions timer runs one instance at a time; the state is written
    conditionally all the same, so two timers could never both move the frontier.
    """

    def __init__(self, store: WaitingRoomStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        self._etag: str | None = None
        self._warm = False
        self._waiting: list[int] = []
        self._polled: dict[int, dt.datetime] = {}
        # (highest seq, lowest seq, written at) of the join records in play, by highest seq.
        self._records: list[tuple[int, int, dt.datetime]] = []
        self._seen: dict[str, dt.datetime] = {}
        self._read_to: dt.datetime | None = None
        # Join records written up to this moment are in the stored figures already (set on a rebuild).
        self._accounted: dt.datetime | None = None
        self._numbers = NumberAccount()

    async def advance(self) -> RoomState | None:
        """One tick. Returns the new state, or None when the room is off or another writer won."""
        now = self._clock.now()
        stored_settings = await self._store.load_settings()
        settings = stored_settings.settings if stored_settings else RoomSettings()
        if not settings.enabled:
            return None
        stored = await self._store.load_state()
        if not self._warm or (stored.etag if stored else None) != self._etag:
            self._reset()
        state = stored.state if stored else RoomState()
        floor = admission_floor(settings, state)
        joined, implicit = await self._read_journals(state, settings, floor, now)
        # Admissions are owed from the last tick, or from the moment the room was last switched on.
        owed_from = max((t for t in (state.ticked_at, moment_of(settings.opened_at)) if t), default=None)
        due = admissions_due(settings.admit_per_minute, owed_from, now, state.credit)
        progress = advance(floor, self._waiting, due, self._polled, now, state.windows, self._joined_at,
                           self._numbers.on_the_way(now))
        remaining = self._waiting[progress.consumed:]
        in_play = [record for record in self._records if record[0] > progress.frontier]
        ledger_from = min((at for _, _, at in in_play), default=None)
        self._numbers.passed(progress.frontier)
        next_state, archive = after_tick(state, progress, remaining, settings, now, joined, implicit, ledger_from,
                                         self._numbers.lost(now))
        # Archived lapsed sets first: an instance only looks for one once the state says the frontier left it.
        if archive:
            await self._store.save_lapsed(archive)
        try:
            saved = await self._store.save_state(next_state, stored)
        except VersionConflictError:
            self._reset()
            return None
        self._etag, self._warm = saved.etag, True
        self._waiting, self._records = remaining, in_play
        self._polled = {seq: at for seq, at in self._polled.items() if seq > progress.frontier}
        return next_state

    def _joined_at(self, seq: int) -> dt.datetime | None:
        """When a waiting ticket's join was recorded (joining counts as a poll)."""
        at = bisect.bisect_left(self._records, seq, key=lambda record: record[0])
        if at < len(self._records) and self._records[at][1] <= seq:
            return self._records[at][2]
        return None

    async def _read_journals(self, state: RoomState, settings: RoomSettings, floor: int,
                             now: dt.datetime) -> tuple[int, int]:
        """Fold in joins and poll reports written since the last read: (joined, admitted in passing)."""
        if self._read_to is None:
            self._numbers = NumberAccount(floor, state.lost)
            self._accounted = state.ticked_at
            start = max(state.ledger_from or state.ticked_at or moment_of(settings.opened_at), now - MAX_REBUILD)
            joins = await self._store.joins_since(start - JOURNAL_MARGIN, now, floor)
            polls = await self._store.polls_since(now - LAPSE_AFTER - JOURNAL_MARGIN, now)
        else:
            # Records of tickets the floor has passed too: they were admitted in passing, and the
            # account of the numbers read needs them.
            since = self._read_to - JOURNAL_MARGIN
            joins = await self._store.joins_since(since, now, 0)
            polls = await self._store.polls_since(since, now)
        self._read_to = now
        arrived: list[int] = []
        counted = 0
        for entry in joins:
            if entry.id in self._seen or not entry.seqs:
                continue
            self._seen[entry.id] = entry.written_at
            # A rebuild re-reads records the previous timer already counted; the figures take only newer ones.
            fresh = self._accounted is None or entry.written_at > self._accounted
            self._numbers.read(entry.seqs, now)
            if not fresh and max(entry.seqs) <= floor:
                continue  # admitted and counted before this timer started
            arrived.extend(entry.seqs)
            if fresh:
                counted += len(entry.seqs)
            bisect.insort(self._records, (max(entry.seqs), min(entry.seqs), entry.written_at),
                          key=lambda record: record[0])
        self._fold_polls(polls, floor)
        # The next read starts JOURNAL_MARGIN before now: older ids cannot come back.
        horizon = now - JOURNAL_MARGIN
        self._seen = {key: at for key, at in self._seen.items() if at >= horizon}
        later = [seq for seq in arrived if seq > floor]
        # Tickets of an earlier opening the floor has passed were admitted without waiting; the timer
        # only counts them. This opening's were counted when the frontier passed them on their way.
        implicit = min(counted, sum(1 for seq in arrived if seq <= settings.opened_at))
        dropped = 0
        if self._waiting and self._waiting[0] <= floor:
            keep = [seq for seq in self._waiting if seq > floor]
            dropped, self._waiting = len(self._waiting) - len(keep), keep
        if later:
            # Nearly sorted already: linear for timsort. Equal numbers are kept (tickets numbered by the
            # clock while the room was off can tie); such tickets are admitted together.
            self._waiting = sorted([*self._waiting, *later])
        return counted, implicit + dropped

    def _fold_polls(self, polls: list[JournalEntry], floor: int) -> None:
        for entry in polls:
            if entry.id in self._seen:
                continue
            self._seen[entry.id] = entry.written_at
            for seq in entry.seqs:
                if seq > floor and (seq not in self._polled or self._polled[seq] < entry.written_at):
                    self._polled[seq] = entry.written_at
