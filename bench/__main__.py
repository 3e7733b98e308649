"""`python -m bench` (make bench): every benchmark in turn, then one JSON line with the headline figures."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from typing import Any

from bench import booking, devhost_overhead, eligibility, events, gp_upload, journey, nims, waiting_room


def main() -> None:
    started = time.monotonic()
    overhead = devhost_overhead.main([])
    checks = eligibility.main()
    books = booking.main([])
    flow = events.main([])
    room = waiting_room.main()
    load = journey.main()
    gp = gp_upload.main([])
    exchange = nims.main([])
    summary: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "bookings_per_s": books["bookings_per_s"],
        "raw_conditional_patch_per_s": books["raw_conditional_patch_per_s"],
        "booking_ratio": books["booking_ratio"],
        "booking_p50_ms": books["booking_p50_ms"],
        "booking_p99_ms": books["booking_p99_ms"],
        "cosmos_requests_per_booking": books["cosmos_requests_per_booking"],
        "booking_cpu_ms": books["booking_cpu_ms"],
        "overbooked_slots": books["overbooked_slots"] + load["overbooked_slots"],
        "events_per_s": flow["events_per_s"],
        "events_bookings_per_s": flow["bookings_per_s"],
        "event_lag_p99_ms": flow["event_lag_p99_ms"],
        "booking_to_sms_p99_ms": flow["booking_to_sms_p99_ms"],
        "texts_per_s": flow["texts_per_s"],
        "paced_booking_to_sms_p99_ms": flow["paced_booking_to_sms_p99_ms"],
        "eligibility_per_s": checks["eligibility_per_s"],
        "eligibility_p50_ms": checks["eligibility_p50_ms"],
        "eligibility_p99_ms": checks["eligibility_p99_ms"],
        "eligibility_to_health_ratio": checks["eligibility_to_health_ratio"],
        "pure_decisions_per_s": checks["pure_decisions_per_s"],
        "waiting_room_status_cosmos_requests_per_poll": room["poll_cosmos_requests_per_poll"],
        "waiting_room_join_cosmos_requests_per_join": room["join_cosmos_requests_per_join"],
        "waiting_room_polls_per_s": room["polls_per_s"],
        "waiting_room_admitted_vs_configured": round(
            room["admit_per_minute_achieved"] / room["admit_per_minute_configured"], 3),
        "queue_position_error_max": room["queue_position_error_max"],
        "queue_position_error_max_one_instance": room["queue_position_error_max_burst_one_instance"],
        "queue_position_within_bound_share": room["queue_position_within_bound_share"],
        "queue_position_error_max_at_6000_per_min": room["queue_position_at_6000_per_min_error_max"],
        "queue_wait_estimate_ratio_range": [room["queue_wait_estimate_ratio_min"],
                                            room["queue_wait_estimate_ratio_max"]],
        "devhost_to_bare_http_ratio": overhead.get("ratio_devhost_async_to_bare"),
        "journey_peak_requests_per_s": load["peak_requests_per_s"],
        "journey_peak_users": load["peak_users"],
        "gp_rows_per_s": gp["rows_per_s"],
        "gp_cosmos_requests_per_row": gp["cosmos_requests_per_row"],
        "gp_worker_rss_peak_mb": gp["worker_rss_peak_mb"],
        "gp_invitations_sent_per_s": gp["invitations_sent_per_s"],
        "nims_inbound_lines_per_s": exchange["inbound_lines_per_s"],
        "nims_unchanged_lines_per_s": exchange["unchanged_lines_per_s"],
        "nims_cosmos_requests_per_line": exchange["cosmos_requests_per_line"],
        "nims_inbound_rss_growth_mb": exchange["rss_growth_mb_large_file"],
        "nims_outbound_resources_per_s": exchange["outbound_resources_per_s"],
        "nims_cosmos_requests_per_resource": exchange["cosmos_requests_per_resource"],
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
