"""The operator dashboard: `GET /api/admin/dashboard` for NationalAdmin, read from counters."""

from __future__ import annotations

import azure.functions as func

from functions.http import endpoint, json_response, require_staff
from shared.api.dashboard_models import (
    BookingFigures,
    DashboardAnswer,
    FreePlacesFigures,
    FreePlacesRow,
    HourFigures,
    PoisonQueueFigure,
    TextFigures,
    WaitingRoomFigures,
)
from shared.composition import services
from shared.domain.dashboard import REGIONS
from shared.domain.staff import NATIONAL_ADMIN
from shared.services.dashboard import Dashboard

bp = func.Blueprint()


def dashboard_answer(view: Dashboard) -> DashboardAnswer:
    figures, room = view.activity, view.room
    return DashboardAnswer(
        generated_at=view.generated_at,
        bookings=BookingFigures(
            last_hour=figures.booked_last_hour, today=figures.booked_today, cancelled_today=figures.cancelled_today,
            rescheduled_today=figures.rescheduled_today, vaccinated_today=figures.vaccinated_today,
            by_hour=[HourFigures(hour=h.hour, booked=h.booked, cancelled=h.cancelled, texts_sent=h.texts_sent)
                     for h in figures.hours]),
        free_places=FreePlacesFigures(
            days=[day.isoformat() for day in view.days],
            rows=[FreePlacesRow(region=row.region, region_name=REGIONS.get(row.region, row.region),
                                product=row.product, by_day=list(row.by_day), total=row.total)
                  for row in view.free_places],
            total=sum(row.total for row in view.free_places)),
        waiting_room=WaitingRoomFigures(enabled=room.enabled, waiting=room.waiting,
                                        admit_per_minute=room.admit_per_minute, admitted=room.admitted,
                                        longest_wait_seconds=room.longest_wait_seconds),
        texts=TextFigures(sent_last_hour=figures.texts_sent_last_hour, sent_today=figures.texts_sent_today,
                          waiting=view.texts_waiting),
        poison_queues=[PoisonQueueFigure(queue=f"{queue}-poison", depth=depth)
                       for queue, depth in sorted(view.poison.items())])


@bp.route(route="admin/dashboard", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def operator_dashboard(req: func.HttpRequest) -> func.HttpResponse:
    require_staff(req, NATIONAL_ADMIN)
    return json_response(dashboard_answer(await services().dashboard.view()))
