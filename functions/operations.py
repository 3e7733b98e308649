"""Operations: the poison-queue depth report the alert reads (infra/modules/alerts.bicep)."""

from __future__ import annotations

import azure.functions as func

from shared.composition import services

bp = func.Blueprint()

# Every five minutes: the depth alert looks at the last fifteen.
POISON_REPORT_SCHEDULE = "0 */5 * * * *"


@bp.timer_trigger(arg_name="timer", schedule=POISON_REPORT_SCHEDULE, run_on_startup=False, use_monitor=False)
async def report_poison_queues(timer: func.TimerRequest) -> None:
    await services().poison_queues.report()
