"""GP practices: patient lists arriving in gp-uploads (Event Grid), the practice's uploads and invitation
runs, and the queue that texts the invitations."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import azure.functions as func

from functions.http import endpoint, json_response, parse_body, require_staff
from shared.adapters.queue_gp_invitations import read_invitation_message
from shared.api.gp_models import InvitationRunAnswer, InvitationRunRequest, UploadsAnswer, UploadSummary
from shared.api.problems import not_found
from shared.composition import services
from shared.domain.staff import GP_PRACTICE, NATIONAL_ADMIN
from shared.observability import redacted_traceback
from shared.resources import BLOB_GP_UPLOADS, QUEUE_GP_INVITATIONS
from shared.services.gp.invitations import InviteCommand

bp = func.Blueprint()
log = logging.getLogger("functions.gp")

ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")


class NotHandledError(Exception):
    """The event or message comes again (and is dead-lettered or poisoned after its last try)."""


def _ods(req: func.HttpRequest) -> str:
    ods = str(req.route_params.get("odsCode", ""))
    if not ODS_CODE.match(ods):
        raise not_found("No such GP practice")
    return ods


# Flex Consumption runs blob triggers only from Event Grid: the storage account's system topic sends each
# BlobCreated event to this function (infra/modules/event-grid.bicep); devhost sends them the same way.
@bp.blob_trigger(arg_name="upload", path=BLOB_GP_UPLOADS + "/{name}", connection="AzureWebJobsStorage",
                 source=func.BlobSource.EVENT_GRID)
async def check_gp_upload(upload: func.InputStream) -> None:
    # Only the name is used: the service reads the blob itself, in chunks, pinned to one version.
    name = (upload.name or "").removeprefix(BLOB_GP_UPLOADS + "/")
    try:
        handled = await services().gp_uploads.process(name)
    except Exception as error:
        log.warning("gp upload not handled; it will be delivered again\n%s", redacted_traceback(error))
        raise NotHandledError("gp upload not handled") from None
    log.info("gp upload: %s", handled)


@bp.route(route="gp/{odsCode}/uploads", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def gp_uploads(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, GP_PRACTICE, NATIONAL_ADMIN)
    found = await services().gp_uploads.uploads(_ods(req), principal)
    return json_response(UploadsAnswer(uploads=[
        UploadSummary(file_name=u.file_name, received_at=u.received_at, status=u.status, rows=u.rows,
                      outcomes=u.outcomes, invited=u.invited, problem=u.problem) for u in found]))


@bp.route(route="gp/{odsCode}/uploads/{fileName}/report", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def gp_upload_report(req: func.HttpRequest) -> func.HttpResponse:
    """The upload's report as CSV (the staff screens' download). The file name carries no personal data."""
    principal = require_staff(req, GP_PRACTICE, NATIONAL_ADMIN)
    file_name = str(req.route_params.get("fileName", ""))
    report = await services().gp_uploads.report(_ods(req), file_name, principal)
    return func.HttpResponse(report, status_code=200, mimetype="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{quote(file_name, safe="")}.report.csv"',
        "Cache-Control": "no-store"})


@bp.route(route="gp/{odsCode}/invitations", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def gp_invite(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, GP_PRACTICE, NATIONAL_ADMIN)
    ods = _ods(req)
    body = parse_body(req, InvitationRunRequest)
    result = await services().gp_invitations.invite(InviteCommand(ods, body.file_name, body.limit), principal)
    return json_response(InvitationRunAnswer(invited=result.invited, skipped=result.skipped,
                                             capacity=result.capacity), status=202)


@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_GP_INVITATIONS, connection="AzureWebJobsStorage")
async def send_gp_invitations(msg: func.QueueMessage) -> None:
    try:
        ods, persons = read_invitation_message(msg.get_body())
    except ValueError:
        raise NotHandledError("not an invitation message") from None
    try:
        await services().gp_invitations.send(ods, persons)
    except Exception as error:
        # An SDK's message can quote a mobile number: the log gets types and frames only.
        log.warning("gp invitation texts not sent; they will be retried\n%s", redacted_traceback(error))
        raise NotHandledError("gp invitation texts not sent") from None
