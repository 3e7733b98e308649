"""The NIMS exchange's timers: recorded vaccinations out as FHIR Immunization NDJSON, register files in (with
reconciliation of the bookings they affect and the slot-counter repair). Both can be run now through the host's
admin API (`POST /admin/functions/{name}`), which devhost serves. docs/nims.md."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import azure.functions as func

from shared.api.nims_models import decode_line
from shared.composition import services
from shared.observability import redacted_traceback

bp = func.Blueprint()
log = logging.getLogger("functions.nims")


class NotRunError(Exception):
    """The run failed; the next run (on the schedule or by hand) starts again from the ledger."""


async def _logged(work: Awaitable[object], what: str) -> None:
    # An SDK's message can quote a request body, which here holds NHS numbers: types and frames only.
    try:
        await work
    except Exception as error:
        log.warning("%s failed; the next run resumes from its ledger\n%s", what, redacted_traceback(error))
        raise NotRunError(f"{what} failed") from None


# Singletons in Azure (the host holds a lease per timer), and serialised per timer by devhost.
@bp.timer_trigger(schedule="%NIMS_EXPORT_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def export_nims_vaccinations(timer: func.TimerRequest) -> None:
    await _logged(services().nims_export.export(), "the NIMS export")


@bp.timer_trigger(schedule="%NIMS_INBOUND_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def apply_nims_inbound(timer: func.TimerRequest) -> None:
    await _logged(services().nims_inbound.run(decode_line), "the NIMS inbound run")
