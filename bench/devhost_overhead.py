"""devhost's HTTP overhead: a trivial route through FunctionHost against the same handler on bare aiohttp.

Each server runs in its own process (so the load generator does not share its event loop) and is
driven by N keep-alive aiohttp clients for a fixed time, in interleaved rounds. Prints requests/s,
p50/p99 latency, server CPU per request, the devhost/bare ratios, and a final JSON line. Needs no
emulator: the app has only HTTP triggers, so FunctionHost runs without a storage connection.

    .venv/bin/python -m bench.devhost_overhead [--seconds 3] [--rounds 2] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import azure.functions as func
from aiohttp import web

from devhost.emulators import answers, free_port
from devhost.runtime import FunctionHost

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"status":"ok"}'

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping", methods=["GET"])
async def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(BODY, mimetype="application/json")


@app.route(route="ping-sync", methods=["GET"])
def ping_sync(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(BODY, mimetype="application/json")


async def _bare_ping(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def _serve(kind: str, port: int) -> None:
    if kind == "bare":
        bare = web.Application()
        bare.router.add_get("/api/ping", _bare_ping)
        runner = web.AppRunner(bare, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    else:
        host_json = json.loads((ROOT / "host.json").read_text()) if (ROOT / "host.json").exists() else {}
        await FunctionHost(app, host_json, None, port).start()
    await asyncio.Event().wait()  # until the parent terminates this process


def _server_process(kind: str, port: int) -> None:
    asyncio.run(_serve(kind, port))


@dataclass
class Result:
    """One server's numbers."""

    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    # Server CPU per request: the overhead itself, whichever side (client or server) limits throughput.
    server_cpu_us_per_request: float | None = None


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, seconds: float, concurrency: int, max_requests: int) -> Result:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3 * concurrency):  # warm-up: open the keep-alive connections
            async with session.get(url) as response:
                await response.read()
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                started = time.perf_counter()
                async with session.get(url) as response:
                    body = await response.read()
                    if response.status != 200 or body != BODY:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return Result(
        requests=len(ordered),
        errors=errors,
        seconds=round(elapsed, 2),
        rps=round(len(ordered) / elapsed, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 2),
        p99_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    )


def measure(kind: str, path: str, seconds: float, concurrency: int, max_requests: int) -> Result:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_server_process, args=(kind, port), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 15
        while not answers("127.0.0.1", port):
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        cpu_before = _cpu_seconds(process.pid)
        result = asyncio.run(_load(f"http://127.0.0.1:{port}{path}", seconds, concurrency, max_requests))
        cpu_after = _cpu_seconds(process.pid)
        if cpu_before is not None and cpu_after is not None and result.requests:
            result.server_cpu_us_per_request = round((cpu_after - cpu_before) / result.requests * 1e6, 1)
        return result
    finally:
        process.terminate()
        process.join(5)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="load time per server per round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best round counts")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent keep-alive clients")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per server and round")
    args = parser.parse_args(argv)
    rounds = max(1, args.rounds)
    seconds = min(args.seconds, 24.0 / (3 * rounds))  # keeps the whole run under 30 s

    servers = (
        ("bare_aiohttp", "bare", "/api/ping"),
        ("devhost_async", "devhost", "/api/ping"),
        ("devhost_sync", "devhost", "/api/ping-sync"),
    )
    # Interleaved rounds, best of each: other work on a shared machine only ever slows a round down.
    runs: dict[str, list[Result]] = {name: [] for name, _, _ in servers}
    for _ in range(rounds):
        for name, kind, path in servers:
            runs[name].append(measure(kind, path, seconds, args.concurrency, args.max_requests))
    results: dict[str, Result] = {}
    for name, _, _ in servers:
        best = max(runs[name], key=lambda r: r.rps)
        cpu = [r.server_cpu_us_per_request for r in runs[name] if r.server_cpu_us_per_request is not None]
        best.server_cpu_us_per_request = min(cpu) if cpu else None
        results[name] = best
        print(f"{name:14} {best.rps:8.1f} req/s  p50 {best.p50_ms:6.2f} ms  p99 {best.p99_ms:6.2f} ms  "
              f"server CPU {best.server_cpu_us_per_request} us/req  "
              f"(rounds: {', '.join(f'{r.rps:.0f}' for r in runs[name])} req/s; "
              f"{sum(r.errors for r in runs[name])} errors)")
    bare = results["bare_aiohttp"].rps
    ratios = {name: round(results[name].rps / bare, 3) for name in ("devhost_async", "devhost_sync")}
    for name, ratio in ratios.items():
        print(f"{name}/bare throughput ratio: {ratio:.3f}")
    bare_cpu = results["bare_aiohttp"].server_cpu_us_per_request
    cpu_ratios = {
        name: round(used / bare_cpu, 3) if (used := results[name].server_cpu_us_per_request) and bare_cpu else None
        for name in ("devhost_async", "devhost_sync")
    }
    summary = {
        "benchmark": "devhost_overhead",
        "concurrency": args.concurrency,
        "seconds_per_server_round": seconds,
        "rounds": rounds,
        "results": {name: asdict(result) for name, result in results.items()},
        "ratio_devhost_async_to_bare": ratios["devhost_async"],
        "ratio_devhost_sync_to_bare": ratios["devhost_sync"],
        "cpu_per_request_ratio_devhost_async_to_bare": cpu_ratios["devhost_async"],
        "cpu_per_request_ratio_devhost_sync_to_bare": cpu_ratios["devhost_sync"],
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
