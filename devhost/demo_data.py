"""Demo data for `make dev`: a synthetic population, sites and sessions, loaded through the services."""

from __future__ import annotations

import logging

log = logging.getLogger("devhost.demo")


async def load_demo_data() -> None:
    """Load each area's demo data; areas add themselves here as they are built."""
    log.info("demo data: nothing to load yet")
