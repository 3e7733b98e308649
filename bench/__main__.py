"""`python -m bench` (make bench): every benchmark in turn, then one JSON line with the headline figures."""

from __future__ import annotations

import json
import platform
import time
from typing import Any

from bench import devhost_overhead, eligibility


def main() -> None:
    started = time.monotonic()
    summary: dict[str, Any] = {"machine": f"{platform.machine()} {platform.python_version()}"}
    overhead = devhost_overhead.main([])
    summary["devhost_overhead"] = overhead
    checks = eligibility.main()
    summary.update({
        "eligibility_per_s": checks["eligibility_per_s"],
        "eligibility_p50_ms": checks["eligibility_p50_ms"],
        "eligibility_p99_ms": checks["eligibility_p99_ms"],
        "eligibility_to_health_ratio": checks["eligibility_to_health_ratio"],
        "pure_decisions_per_s": checks["pure_decisions_per_s"],
        "bench_seconds": round(time.monotonic() - started, 1),
    })
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
