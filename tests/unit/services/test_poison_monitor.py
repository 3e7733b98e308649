"""The poison-queue depth report: one line per queue, in the form the depth alert parses."""

from __future__ import annotations

import logging
import re

import pytest

from shared.services.poison import PoisonQueueMonitor
from tests.unit.services.fakes import Depths


async def test_each_queue_is_reported_and_a_poisoned_one_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    monitor = PoisonQueueMonitor(Depths({"booking-events": 3}), ["booking-events", "reminders"])
    with caplog.at_level(logging.INFO, logger="shared.services.poison"):
        assert await monitor.report() == {"booking-events": 3, "reminders": 0}
    lines = {(r.levelno, r.getMessage()) for r in caplog.records}
    assert lines == {(logging.WARNING, "poison queue depth: booking-events-poison 3"),
                     (logging.INFO, "poison queue depth: reminders-poison 0")}
    # What the alert's KQL `parse` needs: the prefix, the queue, one space, the count.
    assert all(re.fullmatch(r"poison queue depth: \S+ \d+", message) for _, message in lines)
