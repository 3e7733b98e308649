"""A small closed-loop HTTP load generator: N clients, each sending its next request when the last answers."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RequestMaker = Callable[[int], tuple[str, str, dict[str, Any] | None, dict[str, str]]]


@dataclass
class LoadResult:
    """Throughput and latency of one run."""

    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter[int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    def summary(self) -> dict[str, float]:
        return {"per_s": round(self.per_second, 1), "p50_ms": round(self.percentile(50), 2),
                "p99_ms": round(self.percentile(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else 0.0}


async def run_load(make_request: RequestMaker, clients: int, seconds: float) -> LoadResult:
    """Drive requests from `clients` concurrent loops for `seconds`; a request's index feeds make_request."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    counter = iter(range(10**12))
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.perf_counter() < deadline:
                try:
                    method, url, body, headers = make_request(next(counter))
                except StopIteration:  # the maker ran out of fresh inputs (say, unbooked people): the run ends early
                    return
                started = time.perf_counter()
                async with session.request(method, url, json=body, headers=headers) as answer:
                    await answer.read()
                    statuses[answer.status] += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), elapsed, latencies, statuses)
