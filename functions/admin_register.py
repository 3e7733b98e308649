"""NationalAdmin routes for the register: NIMS record import and the campaign policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import azure.functions as func
from pydantic import ValidationError

from functions.http import (
    IMPORT_BODY_BYTES,
    STAFF_BODY_BYTES,
    endpoint,
    field_issues,
    json_response,
    parse_body,
    require_staff,
)
from shared.api.models import NimsImportAnswer, NimsImportRequest, NimsPatient, PolicyDocument, RecordRejection
from shared.api.problems import FieldError
from shared.composition import services
from shared.domain.register import RegisterRecord
from shared.domain.staff import NATIONAL_ADMIN
from shared.ports.policy import StoredPolicy
from shared.services.register_import import ImportOutcome, RecordRejected

bp = func.Blueprint()


@bp.route(route="admin/nims/patients", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def import_nims_patients(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, NATIONAL_ADMIN)
    body = parse_body(req, NimsImportRequest, limit=IMPORT_BODY_BYTES)
    outcome = await services().register_import.import_records(decode_records(body.patients), principal.user_id)
    return json_response(import_answer(outcome))


def decode_records(items: Sequence[Any]) -> list[RegisterRecord | RecordRejected]:
    """Each record read alone, so that an unreadable one rejects only itself, at its index."""
    decoded: list[RegisterRecord | RecordRejected] = []
    for index, item in enumerate(items):
        try:
            decoded.append(NimsPatient.model_validate(item).to_record())
        except ValidationError as error:
            decoded.append(RecordRejected(index, field_issues(error)))
    return decoded


def import_answer(outcome: ImportOutcome) -> NimsImportAnswer:
    return NimsImportAnswer(imported=outcome.imported, rejected=[
        RecordRejection(index=r.index, errors=[FieldError(field=f.field, message=f.message) for f in r.fields])
        for r in outcome.rejected])


@bp.route(route="admin/policy", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def get_policy(req: func.HttpRequest) -> func.HttpResponse:
    require_staff(req, NATIONAL_ADMIN)
    stored = await services().policy.current()
    return json_response(policy_document(stored))


@bp.route(route="admin/policy", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def put_policy(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, NATIONAL_ADMIN)
    body = parse_body(req, PolicyDocument, limit=STAFF_BODY_BYTES)
    stored = await services().policy.replace(body.policy(), principal.user_id, expected_version=body.version)
    return json_response(policy_document(stored))


def policy_document(stored: StoredPolicy) -> PolicyDocument:
    return PolicyDocument.model_validate(
        {**stored.policy.model_dump(), "version": stored.version, "updated_at": stored.updated_at})
