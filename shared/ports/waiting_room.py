"""Ports of the waiting room: its settings and state, the join and poll journals, admissions, the joins queue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.domain.waiting_room import RoomSettings, RoomState


@dataclass(frozen=True)
class StoredRoomSettings:
    settings: RoomSettings
    etag: str | None = None


@dataclass(frozen=True)
class StoredRoomState:
    state: RoomState
    etag: str | None = None


# claimed: this call took the admission; reclaimed: the same holder had taken it (a retry); taken: someone else has.
ClaimOutcome = Literal["claimed", "reclaimed", "taken"]


@dataclass(frozen=True)
class JournalEntry:
    """One write-once record of the waiting-room journal: a batch of joins, or of polls reported."""

    id: str
    written_at: dt.datetime
    seqs: tuple[int, ...]
    # For a join record: the instance that sent the message, and the message's number there.
    source: str | None = None
    number: int | None = None


class WaitingRoomStore(Protocol):
    """Settings, admission progress, lapsed sets, the join and poll journals, admissions used."""

    async def load_settings(self) -> StoredRoomSettings | None: ...

    async def save_settings(self, settings: RoomSettings, previous: StoredRoomSettings | None) -> StoredRoomSettings:
        """Raises VersionConflictError if another writer got there first."""
        ...

    async def load_state(self) -> StoredRoomState | None: ...

    async def save_state(self, state: RoomState, previous: StoredRoomState | None) -> StoredRoomState:
        """Raises VersionConflictError if another writer got there first."""
        ...

    async def load_lapsed(self, bucket: int) -> frozenset[int]: ...

    async def save_lapsed(self, lapsed: dict[int, frozenset[int]]) -> None: ...

    async def take_numbers(self, opening: int, count: int) -> int:
        """Take the next `count` numbers of the opening's join counter, in one atomic increment; returns
        the counter after it (the block is `last - count + 1 .. last`). Many instances take at once."""
        ...

    async def numbers_taken(self, opening: int) -> int:
        """How many numbers the opening's join counter has handed out (0 if none)."""
        ...

    async def record_joins(self, seqs: tuple[int, ...], now: dt.datetime, source: str | None = None,
                           number: int | None = None) -> None:
        """Idempotent: the same batch recorded twice is one record. `source` and `number` name the
        message's sender and its number there (the timer's account of what it has read)."""
        ...

    async def joins_since(self, since: dt.datetime, until: dt.datetime, after_seq: int) -> list[JournalEntry]:
        """Join records written in [since, until] holding some sequence number above `after_seq`."""
        ...

    async def record_polls(self, seqs: tuple[int, ...], now: dt.datetime) -> None: ...

    async def polls_since(self, since: dt.datetime, until: dt.datetime) -> list[JournalEntry]: ...

    async def claim_admission(self, jti: str, keep: dt.timedelta, holder: str | None = None) -> ClaimOutcome:
        """One conditional create: "claimed" the first time, then for `keep` "reclaimed" when `holder`
        (not None) is the one that claimed it and "taken" otherwise."""
        ...

    async def release_admission(self, jti: str) -> None: ...


class JoinPublisher(Protocol):
    """Sends one waiting-room join message (a batch of sequence numbers) to the joins queue."""

    async def publish(self, message: str) -> None: ...


class AdmissionGate(Protocol):
    """What booking asks of the waiting room (implemented by WaitingRoomService)."""

    async def check(self, token: str | None, now: dt.datetime) -> bool:
        """Whether the waiting room is on, so that booking needs an admission; if so, raises
        AdmissionRequiredError unless the token is valid, in date and of the room's current opening.
        No store request: booking calls it before it reads anything."""
        ...

    async def consume(self, token: str | None, now: dt.datetime, holder: str | None = None) -> bool:
        """Use the admission once; raises AdmissionRequiredError if missing, invalid, expired or used.

        A retry of the request `holder` names may use it again: False then (it was not newly claimed).
        """
        ...

    async def release(self, token: str, now: dt.datetime) -> None:
        """Give a consumed admission back when the booking it was for did not happen."""
        ...
