"""Per-caller throttling inside one instance: a token bucket per client key, bounded in memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from shared.domain.throttling import TokenBucket, may_be_shared


class ClientThrottle:
    """Front-line limit per client address on this instance.

    It is per instance on purpose: it costs no request to a store, and the platform's edge (Front
    Door WAF rate limiting) enforces the global figure. The per-NHS-number lock is the global one.
    """

    def __init__(self, capacity: float, per_second: float, max_clients: int = 100_000,
                 monotonic: Callable[[], float] = time.monotonic,
                 shared: tuple[float, float] | None = None) -> None:
        """`shared`: (capacity, per_second) for keys that may stand for many people (an IPv4 address, which a
        mobile network's NAT shares among thousands); None: the same limit for every key."""
        self._capacity = capacity
        self._per_second = per_second
        self._shared = shared
        self._max_clients = max_clients
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """0 when this client may go ahead now (and counts the call), else whole seconds to wait."""
        now = self._monotonic()
        capacity, per_second = self._shared if self._shared and may_be_shared(client) else (self._capacity,
                                                                                              self._per_second)
        bucket = self._buckets.pop(client, None) or TokenBucket.full(capacity, per_second, now)
        bucket, wait = bucket.take(now)
        self._buckets[client] = bucket
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)  # the least recently seen client starts afresh
        return math.ceil(wait) if wait > 0 else 0
