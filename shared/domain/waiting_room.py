"""Waiting-room rules: join order, positions, estimates, lapses, admission progress and signed claims."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from shared.domain.queue_positions import (
    QueueIndex,
    Ranges,
    count_between,
    merged,
    nth_after,
    numbers_ahead,
    queue_index,
)

# A ticket nobody has asked about for this long stops holding its place (judged when admission reaches it).
LAPSE_AFTER = dt.timedelta(minutes=5)
# Join order is cut into buckets of this many sequence numbers (while the room is on, this many joins):
# the unit of the lapsed-set archive, so the state holds the lapsed tickets of at most one bucket.
BUCKET_NUMBERS = 4096
# Polls are reported for the tickets admission will reach within this many minutes at the current
# rate; twice the lapse time so that a raised rate does not outrun what instances report.
REPORT_WINDOW_MINUTES = 10
# After a pause the timer admits at most this much backlog at once, so a stalled timer cannot
# release a flood the booking service was never sized for.
MAX_CATCH_UP = dt.timedelta(seconds=60)
# Allowance for instances' cached view of the reporting limit and for reports still to be written.
WATCH_MARGIN = dt.timedelta(seconds=30)
WINDOW_STEP = dt.timedelta(seconds=15)
# The admission timer's period (functions/waiting_room.py runs it every two seconds); the state
# records the one measured, and this stands until it has.
TICK = dt.timedelta(seconds=2)
# An instance moves positions on by the admissions due since the state it holds, for at most this
# long (a timer that stopped does not admit, so positions must not run on for ever either).
MAX_EXTRAPOLATION = dt.timedelta(seconds=10)

_MICROS = 1_000_000
# (published at, report polls up to this sequence number; None: all), oldest first.
Windows = tuple[tuple[dt.datetime, int | None], ...]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- Join order -------------------------------------------------------------------------------


def seq_at(moment: dt.datetime) -> int:
    """The sequence number of a join at `moment`: microseconds since 1970 (exact in a JSON double)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MICROS + delta.microseconds


def moment_of(seq: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=seq)


def bucket_of(seq: int) -> int:
    """The bucket of join order a sequence number falls in."""
    return seq // BUCKET_NUMBERS


@dataclass
class SequenceSource:
    """Hands out strictly increasing sequence numbers on one instance, from its clock, while the room
    is off (those tickets are admitted at once). While it is on, joins are numbered by the opening's
    counter instead (`queue_positions`), so that the people ahead are counted, not estimated."""

    last: int = 0

    def next(self, now: dt.datetime) -> int:
        self.last = max(seq_at(now), self.last + 1)
        return self.last


# --- Settings and admission progress ----------------------------------------------------------


@dataclass(frozen=True)
class RoomSettings:
    """What NationalAdmin controls. Off by default; `opened_at` is the sequence number at the moment
    the room was last switched on. It is also the room's epoch: tickets and admission tokens carry the
    epoch they were issued in, and while the room is on only those of its current opening stand
    (`of_this_opening`); a ticket from before it must join again, behind everyone already queueing.
    The tickets of an opening are numbered `opened_at + 1`, `opened_at + 2`, ... in join order."""

    enabled: bool = False
    admit_per_minute: int = 600
    opened_at: int = 0
    version: int = 0
    updated_at: dt.datetime | None = None
    updated_by: str | None = None

    def changed(self, enabled: bool, admit_per_minute: int | None, now: dt.datetime, by: str,
                numbered_to: int = 0) -> RoomSettings:
        """`numbered_to`: the highest sequence number the last opening handed out; a new opening
        starts above it, so that its tickets can never be taken for the last one's."""
        opened_at = max(seq_at(now), numbered_to + 1) if enabled and not self.enabled else self.opened_at
        rate = self.admit_per_minute if admit_per_minute is None else admit_per_minute
        return RoomSettings(enabled=enabled, admit_per_minute=rate, opened_at=opened_at,
                            version=self.version + 1, updated_at=now, updated_by=by)


@dataclass(frozen=True)
class RoomState:
    """How far admission has gone: written by the admission timer, cached by every instance.

    `frontier`: every ticket with a sequence number up to it is admitted, except the lapsed ones:
    released evenly over the tick from `released_from` (where the last tick's release had got to),
    so that admissions flow at the configured rate rather than in a step per tick (`released`).
    `lapsed_here`: the lapsed tickets in the frontier's own bucket (earlier buckets are archived).
    `index`: the waiting tickets after the frontier that the timer has read (how many wait).
    `lost`: numbers after the frontier that nobody holds (their joins never reached the queue).
    `report_until`: instances report polls of waiting tickets up to this sequence number.
    """

    frontier: int = 0
    # None: everything up to the frontier is released (a state from before releases were spread).
    released_from: int | None = None
    lapsed_here: frozenset[int] = frozenset()
    index: QueueIndex = field(default_factory=QueueIndex)
    lost: Ranges = ()
    report_until: int | None = None
    # The reporting limits published over the last few minutes, for lapse judgements.
    windows: Windows = ()
    live_ratio: float = 1.0
    joined: int = 0
    admitted: int = 0
    lapsed: int = 0
    credit: float = 0.0
    ticked_at: dt.datetime | None = None
    # The measured time between the timer's last two ticks.
    tick_seconds: float = TICK.total_seconds()
    # The write time of the oldest join record that may hold a ticket still waiting.
    ledger_from: dt.datetime | None = None

    @property
    def waiting(self) -> int:
        return self.index.count


def admission_floor(settings: RoomSettings, state: RoomState) -> int:
    """Tickets with sequence numbers up to this have been passed by the timer (lapsed ones excepted)."""
    return max(state.frontier, settings.opened_at)


def released(state: RoomState, now: dt.datetime | None) -> int:
    """How far the frontier has been released at `now`: the timer moves it once a tick, and the
    numbers it passed are let through evenly over the following tick, the same for every instance
    (their clocks agree to milliseconds), so that the people ahead fall smoothly at the rate."""
    start = state.released_from
    if now is None or start is None or state.ticked_at is None or state.frontier <= start:
        return state.frontier
    share = (now - state.ticked_at).total_seconds() / state.tick_seconds
    if share >= 1:
        return state.frontier
    # The first at once, the last a share before the next tick: a tick that comes a little early then
    # finds the release done, rather than carrying a straggler into its own.
    if share < 0:
        return start
    passed = state.frontier - start
    return start + min(passed, math.floor(passed * share) + 1)


def released_at(seq: int, state: RoomState) -> dt.datetime | None:
    """The moment a ticket the frontier has passed is released (None if it is not passed yet)."""
    if seq > state.frontier:
        return None
    start = state.released_from
    if start is None or state.ticked_at is None or seq <= start:
        return state.ticked_at
    share = (seq - start - 1) / (state.frontier - start)
    return state.ticked_at + dt.timedelta(seconds=share * state.tick_seconds)


def release_floor(settings: RoomSettings, state: RoomState, now: dt.datetime | None) -> int:
    """Tickets with sequence numbers up to this are admitted at `now` (lapsed ones excepted)."""
    return max(released(state, now), settings.opened_at)


# --- What a ticket's holder is told -----------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    admitted: bool
    position: int  # 1 = next; 0 once admitted
    estimated_wait_seconds: int
    lapsed: bool = False


ADMITTED = Standing(admitted=True, position=0, estimated_wait_seconds=0)
LAPSED = Standing(admitted=False, position=0, estimated_wait_seconds=0, lapsed=True)


def estimate_wait_seconds(position: int, admit_per_minute: int) -> int:
    """Seconds until `position` is reached at the configured rate."""
    if position <= 0:
        return 0
    return math.ceil(position * 60 / max(1, admit_per_minute))


def lapsed_bucket_needed(seq: int, settings: RoomSettings, state: RoomState) -> int | None:
    """The archived bucket whose lapsed set decides this ticket, if the cached state cannot."""
    if not settings.enabled or seq <= settings.opened_at or seq > state.frontier:
        return None
    bucket = bucket_of(seq)
    return bucket if bucket < bucket_of(state.frontier) else None


def admitted_since(settings: RoomSettings, state: RoomState, now: dt.datetime | None) -> float:
    """Admissions most likely released beyond what the state an instance holds says.

    The state's own release runs for a tick after it was written (`released`); the next tick owes
    what falls due meanwhile and releases it over the tick after, so from then on admissions flow
    at the configured rate, one tick behind.
    """
    if now is None or not settings.enabled:
        return 0.0
    since = max((t for t in (state.ticked_at, moment_of(settings.opened_at)) if t), default=None)
    if since is None:
        return 0.0
    age = min(now - since, MAX_EXTRAPOLATION).total_seconds() - state.tick_seconds
    return max(0.0, age) * settings.admit_per_minute / 60


def people_ahead(seq: int, settings: RoomSettings, state: RoomState, now: dt.datetime | None = None,
                 voided: Ranges = ()) -> float:
    """The people still there ahead of a waiting ticket: every number between the frontier and its
    own, less those nobody holds (lost, as the timer published; `voided`, this instance's own joins
    that failed, known at once), discounted by the share of passed tickets that were still there,
    less what the timer has most likely admitted since the state was written."""
    floor = release_floor(settings, state, now)
    if seq <= floor:
        return 0.0
    held = numbers_ahead(seq, floor, merged(state.lost, voided) if voided else state.lost)
    return max(0.0, held * state.live_ratio - admitted_since(settings, state, now))


def standing(seq: int, settings: RoomSettings, state: RoomState, archived_lapsed: Collection[int] = (),
             now: dt.datetime | None = None, voided: Ranges = ()) -> Standing:
    """Admitted, lapsed, or waiting with a position and an estimate from the admission rate."""
    if not settings.enabled or seq <= settings.opened_at:
        return ADMITTED
    if seq <= state.frontier:
        in_frontier_bucket = bucket_of(seq) == bucket_of(state.frontier)
        lapsed = seq in state.lapsed_here if in_frontier_bucket else seq in archived_lapsed
        if lapsed:
            return LAPSED
        if seq <= released(state, now):
            return ADMITTED
    position = 1 + round(people_ahead(seq, settings, state, now, voided))
    return Standing(admitted=False, position=position,
                    estimated_wait_seconds=estimate_wait_seconds(position, settings.admit_per_minute))


def should_report(seq: int, settings: RoomSettings, state: RoomState) -> bool:
    """Whether a poll of this waiting ticket is worth reporting to the admission timer."""
    if not settings.enabled or seq <= admission_floor(settings, state):
        return False
    return state.report_until is None or seq <= state.report_until


# --- Admission progress (the timer) -----------------------------------------------------------


def watched_since(seq: int, windows: Windows) -> dt.datetime | None:
    """Since when instances have been reporting this ticket's polls without a break, if they are now.

    `windows` are the reporting limits the timer published, oldest first; the oldest kept entry
    stands for everything before it.
    """
    since: dt.datetime | None = None
    for at, until in windows:
        covered = until is None or seq <= until
        since = (since or at) if covered else None
    return since


def is_lapsed(seq: int, last_polled: dt.datetime | None, now: dt.datetime, windows: Windows,
              joined_at: dt.datetime | None = None) -> bool:
    """Not asked about for LAPSE_AFTER, while instances were reporting its polls all that time.

    Joining counts as being asked about (`joined_at`; without it the sequence number is taken as the
    moment, which it is for tickets numbered by the clock). A ticket nobody was watching for long enough (the window
    grew after a rate rise, or the timer started afresh) gets the benefit of the doubt: silence
    that nobody was listening for is not evidence that its holder has gone.
    """
    watched = watched_since(seq, windows)
    if watched is None or now - watched < LAPSE_AFTER + WATCH_MARGIN:
        return False
    joined = joined_at or moment_of(seq)
    seen = joined if last_polled is None else max(joined, last_polled)
    return now - seen > LAPSE_AFTER


def next_windows(windows: Windows, now: dt.datetime, until: int | None) -> Windows:
    """The reporting-limit history after publishing `until`: an entry per WINDOW_STEP, as far back as
    a lapse judgement needs, plus the one entry in force before that."""
    kept = list(windows)
    last_at, last_until = kept[-1] if kept else (None, None)
    # A shrinking limit is recorded at once (some tickets stop being watched); a growing one may
    # wait for the next step, which only understates how long newly covered tickets were watched.
    shrank = until is not None and (last_until is None or until < last_until)
    if last_at is None or shrank or (until != last_until and now - last_at >= WINDOW_STEP):
        kept.append((now, until))
    cutoff = now - LAPSE_AFTER - 2 * WATCH_MARGIN
    while len(kept) > 1 and kept[1][0] <= cutoff:
        kept.pop(0)
    return tuple(kept)


def admissions_due(admit_per_minute: int, since: dt.datetime | None, now: dt.datetime, credit: float) -> float:
    """Admissions owed since the last tick at the configured rate, plus the fraction carried over."""
    if since is None:
        return credit
    elapsed = min(max(now - since, dt.timedelta(0)), MAX_CATCH_UP)
    return admit_per_minute * elapsed.total_seconds() / 60 + credit


@dataclass(frozen=True)
class Progress:
    """One step of admission: how far the frontier moved and whom it passed."""

    frontier: int
    admitted: int
    lapsed: tuple[int, ...]
    consumed: int  # how many of the waiting tickets were passed
    credit: float


def advance(frontier: int, waiting: Sequence[int], due: float, last_polled: Mapping[int, dt.datetime],
            now: dt.datetime, windows: Windows = (),
            joined_at: Callable[[int], dt.datetime | None] = lambda seq: None,
            on_the_way: Ranges = ()) -> Progress:
    """Admit up to `due` tickets strictly in join order, passing over lapsed ones without counting them.

    `waiting` are the known tickets after the frontier in ascending order; `on_the_way` the numbers
    between them whose joins have not been read yet (their messages are still on the queue). Those
    are people too: the frontier passes them as admissions (they are admitted in passing when their
    message comes), so the people ahead of everyone fall at the configured rate. A fraction of an
    admission is carried to the next tick; when nobody is left waiting nothing is carried, so a
    quiet spell cannot bank admissions for a later burst.
    """
    allowance = math.floor(due)
    admitted, lapsed, index = 0, [], 0
    while index < len(waiting) and admitted < allowance:
        seq = waiting[index]
        unread = count_between(on_the_way, frontier, seq)
        if admitted + unread >= allowance:
            frontier = nth_after(on_the_way, frontier, allowance - admitted)
            admitted = allowance
            break
        admitted += unread
        if is_lapsed(seq, last_polled.get(seq), now, windows, joined_at(seq)):
            lapsed.append(seq)
        else:
            admitted += 1
        frontier = seq
        index += 1
    # Lapsed tickets right behind the last admission are passed too: they would only hold the next tick up.
    while (index < len(waiting) and not count_between(on_the_way, frontier, waiting[index])
           and is_lapsed(waiting[index], last_polled.get(waiting[index]), now, windows, joined_at(waiting[index]))):
        lapsed.append(waiting[index])
        frontier = waiting[index]
        index += 1
    # Still waiting means the allowance ran out, so only the fraction below one admission is carried.
    credit = due - admitted if index < len(waiting) else 0.0
    return Progress(frontier=frontier, admitted=admitted, lapsed=tuple(lapsed), consumed=index, credit=credit)


def report_until(waiting: Sequence[int], admit_per_minute: int, live_ratio: float) -> int | None:
    """The sequence number admission should reach within REPORT_WINDOW_MINUTES at the current rate;
    None when it will reach everybody known by then, so that newcomers are reported too."""
    reach = math.ceil(admit_per_minute * REPORT_WINDOW_MINUTES / max(live_ratio, 0.05))
    return waiting[reach - 1] if reach < len(waiting) else None


def next_live_ratio(previous: float, admitted: int, lapsed: int) -> float:
    """A moving share of passed tickets that were still there, to discount positions for leavers."""
    passed = admitted + lapsed
    if passed == 0:
        return previous
    weight = min(0.5, passed / 200)
    return (1 - weight) * previous + weight * (admitted / passed)


def lapsed_by_bucket(seqs: Iterable[int]) -> dict[int, frozenset[int]]:
    grouped: dict[int, set[int]] = {}
    for seq in seqs:
        grouped.setdefault(bucket_of(seq), set()).add(seq)
    return {bucket: frozenset(found) for bucket, found in grouped.items()}


def after_tick(state: RoomState, progress: Progress, remaining: Sequence[int], settings: RoomSettings,
               now: dt.datetime, joined: int, implicitly_admitted: int, ledger_from: dt.datetime | None,
               lost: Ranges = ()) -> tuple[RoomState, dict[int, frozenset[int]]]:
    """The next state, and the lapsed sets of buckets the frontier has now left (to archive first)."""
    lapsed_here: set[int] = set(state.lapsed_here)
    lapsed_here.update(progress.lapsed)
    grouped = lapsed_by_bucket(lapsed_here)
    current = bucket_of(progress.frontier)
    archive = {bucket: seqs for bucket, seqs in grouped.items() if bucket < current}
    ratio = next_live_ratio(state.live_ratio, progress.admitted, len(progress.lapsed))
    until = report_until(remaining, settings.admit_per_minute, ratio)
    next_state = replace(
        state,
        frontier=progress.frontier,
        # What this tick passed is released from where the last tick's release has got to.
        released_from=min(progress.frontier, release_floor(settings, state, now)),
        lapsed_here=grouped.get(current, frozenset()),
        index=queue_index(remaining),
        lost=tuple((first, last) for first, last in lost if last > progress.frontier),
        report_until=until,
        windows=next_windows(state.windows, now, until),
        live_ratio=ratio,
        joined=state.joined + joined,
        admitted=state.admitted + progress.admitted + implicitly_admitted,
        lapsed=state.lapsed + len(progress.lapsed),
        credit=progress.credit,
        ticked_at=now,
        tick_seconds=tick_seconds(state.ticked_at, now, state.tick_seconds),
        ledger_from=ledger_from,
    )
    return next_state, archive


def tick_seconds(previous: dt.datetime | None, now: dt.datetime, before: float) -> float:
    """The timer's period as measured at this tick (a long pause or a first tick keeps the last one)."""
    if previous is None:
        return before
    measured = (now - previous).total_seconds()
    return measured if 0 < measured <= MAX_EXTRAPOLATION.total_seconds() else before


# --- The join message -------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinBatch:
    """One join message: the sequence numbers, the instance that sent it and its number there."""

    seqs: tuple[int, ...]
    source: str | None = None
    number: int | None = None


def join_message(seqs: Sequence[int], source: str | None = None, number: int | None = None) -> str:
    """The queue message one instance sends for a batch of joins (its `number`-th message)."""
    body: dict[str, Any] = {"v": 1, "seqs": list(seqs)}
    if source is not None and number is not None:
        body.update(src=source, n=number)
    return json.dumps(body, separators=(",", ":"))


def read_join_batch(body: bytes | str) -> JoinBatch:
    """The join message's contents; ValueError when it is not one. A sender's name or message number
    that does not parse is ignored (the joins still count, only not as that instance's)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    seqs = data.get("seqs") if isinstance(data, dict) and data.get("v") == 1 else None
    if not isinstance(seqs, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in seqs):
        raise ValueError("not a join message")
    source, number = data.get("src"), data.get("n")
    if (isinstance(source, str) and _SOURCE_ID.fullmatch(source) and isinstance(number, int)
            and not isinstance(number, bool) and number > 0):
        return JoinBatch(tuple(seqs), source, number)
    return JoinBatch(tuple(seqs))


def read_join_message(body: bytes | str) -> tuple[int, ...]:
    """The sequence numbers in a join message; ValueError when it is not one."""
    return read_join_batch(body).seqs


_SOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def batch_id(seqs: Sequence[int], source: str | None = None) -> str:
    """A join record's id from its content, so a message delivered twice is recorded once."""
    content = ",".join(map(str, sorted(seqs)))
    digest = hashlib.sha256((f"{source}:{content}" if source else content).encode()).hexdigest()
    return digest[:32]


# --- Signed tickets and admission tokens ------------------------------------------------------


class Refusal(enum.StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"  # the signature does not match: forged, tampered, or signed with a retired key
    EXPIRED = "expired"
    USED = "used"
    MISSING = "missing"


class ClaimRefusedError(Exception):
    """A ticket or token that cannot be honoured; the reason is safe to show and to log."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class TicketClaims:
    """`epoch`: the opening of the room the ticket was issued in (its `opened_at`; 0 while it was off)."""

    ticket_id: str
    seq: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    epoch: int = 0


@dataclass(frozen=True)
class AdmissionClaims:
    """An admission token's claims. `jti` is the admission's id: every token re-issued to one ticket
    carries the same one, so an admission books once however often its holder polls."""

    jti: str
    seq: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    epoch: int = 0


def room_epoch(settings: RoomSettings) -> int:
    """The opening of the room a ticket or token issued now belongs to: 0 while the room is off."""
    return settings.opened_at if settings.enabled else 0


def of_this_opening(epoch: int, settings: RoomSettings) -> bool:
    """Whether a ticket or token of `epoch` may stand in the room as it is now.

    While the room is on only those issued since it last opened do: a ticket taken while it was off
    (admitted at once, and valid for hours) or during an earlier opening would otherwise be admitted
    the moment the room opens, ahead of everyone queueing, and could be stockpiled beforehand.
    """
    return not settings.enabled or epoch == settings.opened_at


TICKET_PREFIX = "wrt1"
ADMISSION_PREFIX = "wra1"
MAX_SIGNED_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _epoch(moment: dt.datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


def _from_epoch(value: object) -> dt.datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a time")
    return _EPOCH + dt.timedelta(seconds=value)


@dataclass(frozen=True)
class ClaimSigner:
    """HMAC-SHA256 over the kind and the payload; the kind prefix keeps a ticket from passing as a token.

    `previous_keys` still verify (never sign), so the key can be rotated without refusing tickets
    already handed out.
    """

    key: bytes
    previous_keys: tuple[bytes, ...] = field(default=())

    def _mac(self, key: bytes, prefix: str, payload: str) -> bytes:
        return hmac.new(key, f"{prefix}.{payload}".encode(), hashlib.sha256).digest()

    def _sign(self, prefix: str, claims: dict[str, Any]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{prefix}.{payload}.{_b64(self._mac(self.key, prefix, payload))}"

    def _open(self, prefix: str, value: str | None) -> dict[str, Any]:
        if not value:
            raise ClaimRefusedError(Refusal.MISSING)
        parts = value.split(".")
        if len(value) > MAX_SIGNED_LENGTH or len(parts) != 3 or parts[0] != prefix:
            raise ClaimRefusedError(Refusal.MALFORMED)
        _, payload, signature = parts
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            raise ClaimRefusedError(Refusal.MALFORMED) from None
        if not any(hmac.compare_digest(given, self._mac(key, prefix, payload))
                   for key in (self.key, *self.previous_keys)):
            raise ClaimRefusedError(Refusal.FORGED)
        try:
            claims = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ClaimRefusedError(Refusal.MALFORMED) from None
        if not isinstance(claims, dict):
            raise ClaimRefusedError(Refusal.MALFORMED)
        return claims

    def ticket(self, claims: TicketClaims) -> str:
        return self._seal(TICKET_PREFIX, "tid", claims.ticket_id, claims.seq, claims.issued_at, claims.expires_at,
                          claims.epoch)

    def admission(self, claims: AdmissionClaims) -> str:
        return self._seal(ADMISSION_PREFIX, "jti", claims.jti, claims.seq, claims.issued_at, claims.expires_at,
                          claims.epoch)

    def open_ticket(self, value: str | None, now: dt.datetime) -> TicketClaims:
        return TicketClaims(*self._unseal(TICKET_PREFIX, "tid", value, now))

    def open_admission(self, value: str | None, now: dt.datetime) -> AdmissionClaims:
        return AdmissionClaims(*self._unseal(ADMISSION_PREFIX, "jti", value, now))

    def _seal(self, prefix: str, id_claim: str, ident: str, seq: int, issued_at: dt.datetime,
              expires_at: dt.datetime, epoch: int) -> str:
        # Tickets and admission tokens share one shape: an id, the join sequence, a lifetime and the
        # opening of the room they belong to.
        return self._sign(prefix, {id_claim: ident, "seq": seq, "iat": _epoch(issued_at), "exp": _epoch(expires_at),
                                   "ep": epoch})

    def _unseal(self, prefix: str, id_claim: str, value: str | None,
                now: dt.datetime) -> tuple[str, int, dt.datetime, dt.datetime, int]:
        """(id, seq, issued at, expires at, epoch) of a value this signer made, still in date; refused otherwise.

        A value without an epoch (issued before epochs existed) belongs to no opening: 0.
        """
        raw = self._open(prefix, value)
        try:
            claims = (_text(raw.get(id_claim)), _positive(raw.get("seq")), _from_epoch(raw.get("iat")),
                      _from_epoch(raw.get("exp")), _not_negative(raw.get("ep", 0)))
        except ValueError:
            raise ClaimRefusedError(Refusal.MALFORMED) from None
        if now >= claims[3]:
            raise ClaimRefusedError(Refusal.EXPIRED)
        return claims

def _text(value: object) -> str:
    if not isinstance(value, str) or not 8 <= len(value) <= 64:
        raise ValueError("not an id")
    return value


def _positive(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError("not a sequence number")
    return value


def _not_negative(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not an epoch")
    return value


MIN_POLL_SECONDS: Final = 2
# Well inside LAPSE_AFTER, so that a holder who polls when told never lapses.
MAX_POLL_SECONDS: Final = 60


def poll_after_seconds(estimated_wait_seconds: int, admitted: bool) -> int:
    """How long a client should wait before its next status poll.

    About a tenth of the remaining wait: the estimate a person sees stays fresh to within 10%, while a
    queue of a million people an hour from the front polls far less often than one near it. Polls are
    the waiting room's largest load (docs/capacity.md), so this divides the instances they need.
    """
    if admitted:
        return 0
    return max(MIN_POLL_SECONDS, min(MAX_POLL_SECONDS, estimated_wait_seconds // 10))
