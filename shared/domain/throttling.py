"""Rate-limit arithmetic: token buckets for callers, and the lock after repeated failed matches."""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenBucket:
    """`capacity` calls at once, refilled at `per_second`; state is (tokens, when last counted)."""

    capacity: float
    per_second: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, capacity: float, per_second: float, now: float) -> TokenBucket:
        return cls(capacity, per_second, capacity, now)

    def take(self, now: float) -> tuple[TokenBucket, float]:
        """The bucket after one call, and 0 if the call may go ahead, else seconds until it may."""
        tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        if tokens >= 1:
            return TokenBucket(self.capacity, self.per_second, tokens - 1, now), 0.0
        wait = (1 - tokens) / self.per_second
        return TokenBucket(self.capacity, self.per_second, tokens, now), wait


@dataclass(frozen=True)
class MatchLockRule:
    """How many failed matches for one NHS number, within how long, lock it for how long."""

    max_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    lock: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class MatchFailures:
    """The failed-match record kept beside a person (or beside an unknown number)."""

    count: int
    window_start: dt.datetime
    locked_until: dt.datetime | None = None


def locked_for(failures: MatchFailures | None, now: dt.datetime) -> int:
    """Whole seconds until a number may be tried again; 0 when it is not locked."""
    if failures is None or failures.locked_until is None or failures.locked_until <= now:
        return 0
    return max(1, math.ceil((failures.locked_until - now).total_seconds()))


def after_failed_match(failures: MatchFailures | None, now: dt.datetime, rule: MatchLockRule) -> MatchFailures:
    """The record after one more failed match: a new window when the last one ended, a lock at the limit.

    A lock still running is never cleared, even when the window it was set in has ended.
    """
    if failures is None or now - failures.window_start >= rule.window:
        running = failures.locked_until if failures and locked_for(failures, now) else None
        failures = MatchFailures(0, now, running)
    count = failures.count + 1
    locked_until = now + rule.lock if count >= rule.max_failures else failures.locked_until
    return MatchFailures(count, failures.window_start, locked_until)


# ---- who a caller is, for per-client limits (docs/security.md, finding 8) ----------------------------------


def client_key(address: str) -> str:
    """The key a caller's address is throttled by: an IPv4 address as it is, an IPv6 address by its /64.

    One IPv6 subscriber (a phone, a home) is given a /64 and may use any address in it, so a key per
    address would let them rotate freely. IPv4-mapped IPv6 is its IPv4 address. A port ("203.0.113.7:51234",
    "[2001:db8::1]:443") is dropped. Anything that is not an address is kept as given (bounded).
    """
    text = address.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.rsplit(":", 1)[0]
    try:
        parsed = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text[:64] or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def may_be_shared(key: str) -> bool:
    """Whether a client key may stand for many people: an IPv4 address, which a mobile network's
    carrier-grade NAT (or a hospital's proxy) puts thousands of people behind. An IPv6 /64 is one subscriber."""
    try:
        return isinstance(ipaddress.ip_address(key), ipaddress.IPv4Address)
    except ValueError:
        return False
