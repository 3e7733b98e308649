"""The staff screens' list of a day's sessions: open ones only, with places and bookings, for staff of the site."""

from __future__ import annotations

import pytest

from shared.domain.staff import SITE_STAFF
from shared.services.errors import Forbidden
from tests.unit.services.test_sites_service import ADMIN, TOMORROW, build, manager, registration, session


async def test_the_day_lists_its_open_sessions_with_places_and_bookings_in_time_order() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    afternoon = await world.admin.open_session("FA001", session(start="13:00", end="14:00"), ADMIN, None)
    morning = await world.admin.open_session("FA001", session(), ADMIN, None)
    world.store.slots["FA001.20260302.0900.PFIZER"]["booked"] = 3
    day, listed = await world.admin.sessions_on("FA001", TOMORROW, ADMIN)
    assert day == TOMORROW
    assert [(s.session_id, s.places, s.booked) for s in listed] == [
        (morning.session_id, 48, 3), (afternoon.session_id, 16, 0)]
    await world.admin.cancel_session("FA001", afternoon.session_id, False, ADMIN)
    assert [s.session_id for s in (await world.admin.sessions_on("FA001", TOMORROW, ADMIN))[1]] == [morning.session_id]


async def test_site_staff_see_their_own_site_only() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    await world.admin.register(registration("FA002"), ADMIN, None)
    staff = manager("FA001", world=world, role=SITE_STAFF)
    assert (await world.admin.sessions_on("FA001", TOMORROW, staff))[1] == []
    with pytest.raises(Forbidden):
        await world.admin.sessions_on("FA002", TOMORROW, staff)
