"""The staff screens' report download: the practice's own report as stored, nobody else's, 404 before there is one."""

from __future__ import annotations

import pytest

from shared.services.errors import Forbidden, NotFound
from tests.unit.services.test_gp_practices import ODS, OTHER, PRACTICE_STAFF, GpWorld


async def test_a_practice_downloads_its_report_as_stored_and_not_another_practices() -> None:
    world = GpWorld()
    world.files.put(f"{ODS}/bad.csv", b"not,a,patient,list\n1,2,3,4\n")
    await world.uploads.process(f"{ODS}/bad.csv")
    assert (await world.uploads.report(ODS, "bad", PRACTICE_STAFF)).decode() == world.report("bad")
    with pytest.raises(NotFound):
        await world.uploads.report(ODS, "never-uploaded", PRACTICE_STAFF)
    with pytest.raises(NotFound):
        await world.uploads.report(ODS, "../bad", PRACTICE_STAFF)
    with pytest.raises(Forbidden):
        await world.uploads.report(OTHER, "bad", PRACTICE_STAFF)
