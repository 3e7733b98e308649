"""The HTTP edge: headers read once, and every refusal a use case raises mapped to its problem answer."""

from __future__ import annotations

import azure.functions as func
import pytest

from functions.http import as_problem, bearer_token, client_address, idempotency_key, require_staff
from shared.api.principal import HEADER, encode_principal
from shared.api.problems import ProblemError
from shared.domain.booking import RejectionCode
from shared.domain.eligibility import ReasonCode
from shared.domain.waiting_room import ClaimRefusedError
from shared.domain.waiting_room import Refusal as TicketRefusal
from shared.services import errors


def request(**headers: str) -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/x", headers=headers, body=b"")


def test_the_bearer_token_is_read_from_the_authorization_header() -> None:
    assert bearer_token(request(authorization="Bearer wra1.a.b")) == "wra1.a.b"
    assert bearer_token(request()) is None
    assert bearer_token(request(authorization="Basic abc")) is None
    assert bearer_token(request(authorization="Bearer ")) is None


def test_an_idempotency_key_is_trimmed_and_bounded() -> None:
    assert idempotency_key(request()) is None
    assert idempotency_key(request(**{"idempotency-key": " k1 "})) == "k1"
    for bad in ("   ", "x" * 201, "a\tb"):
        with pytest.raises(ProblemError) as refused:
            idempotency_key(request(**{"idempotency-key": bad}))
        assert refused.value.problem.status == 422 and refused.value.problem.errors[0].field == "Idempotency-Key"


def test_the_client_address_is_the_last_forwarded_hop() -> None:
    assert client_address(request(**{"x-forwarded-for": "1.1.1.1, 203.0.113.7:51234"})) == "203.0.113.7"
    assert client_address(request(**{"x-forwarded-for": "[2001:db8::1]:443"})) == "2001:db8::/64"  # by its /64
    assert client_address(request()) == "direct"


def test_staff_routes_need_a_principal_with_one_of_the_roles() -> None:
    with pytest.raises(ProblemError) as missing:
        require_staff(request(), "NationalAdmin")
    assert missing.value.problem.status == 401
    header = encode_principal("Pat", ["SiteStaff"], user_id="u1")
    with pytest.raises(ProblemError) as wrong_role:
        require_staff(request(**{HEADER: header}), "NationalAdmin")
    assert wrong_role.value.problem.status == 403
    assert require_staff(request(**{HEADER: header}), "SiteStaff", "NationalAdmin").user_id == "u1"


@pytest.mark.parametrize(("error", "status", "code"), [
    (errors.NotFound("No booking matches those details"), 404, "NOT_FOUND"),
    (errors.InvalidRequest("bad", [errors.FieldIssue("date", "is in the past")]), 422, "VALIDATION_FAILED"),
    (errors.Forbidden("You are not assigned to this site"), 403, "FORBIDDEN"),
    (errors.IdempotencyKeyReused(), 409, "IDEMPOTENCY_KEY_REUSED"),
    (errors.ChangedMeanwhile("try again"), 409, "CONFLICT"),
    (errors.AlreadyMoving(), 409, "CONFLICT"),
    (errors.NotEligible([ReasonCode.COHORT_NOT_OPEN]), 403, "NOT_ELIGIBLE"),
    (errors.AlreadyBooked(), 409, "ALREADY_BOOKED"),
    (errors.SlotFull(), 409, "SLOT_FULL"),
    (errors.BookingRuleBroken(RejectionCode.DUPLICATE_SLOT, "twice"), 422, "DUPLICATE_SLOT"),
    (errors.BookingRuleBroken(RejectionCode.TOO_EARLY, "early"), 409, "TOO_EARLY"),
    (errors.NotConfirmed(), 409, "NOT_CONFIRMED"),
    (errors.DosesDiffer(), 409, "DOSES_DIFFER"),
    (errors.SiteExists(), 409, "SITE_EXISTS"),
    (errors.ProductNotOffered(), 422, "PRODUCT_NOT_OFFERED"),
    (errors.SessionOverlaps("overlaps"), 409, "SESSION_OVERLAPS"),
    (errors.SessionHasBookings("booked"), 409, "SESSION_HAS_BOOKINGS"),
    (errors.InvitationExpired(), 410, "INVITATION_EXPIRED"),
    (errors.RateLimitedError(30), 429, "RATE_LIMITED"),
    (errors.AdmissionRequiredError("used"), 403, "ADMISSION_REQUIRED"),
    (errors.TicketLapsedError(), 410, "TICKET_LAPSED"),
    (ClaimRefusedError(TicketRefusal.EXPIRED), 403, "TICKET_EXPIRED"),
    (errors.SagaInterruptedError(), 503, "TRY_AGAIN"),
])
def test_every_refusal_has_its_problem_answer(error: Exception, status: int, code: str) -> None:
    problem = as_problem(error).problem
    assert (problem.status, problem.code) == (status, code)
    if isinstance(error, errors.Refusal):
        assert problem.detail == error.detail
        assert [(f.field, f.message) for f in problem.errors] == [(f.field, f.message) for f in error.fields]


def test_every_refusal_class_is_in_the_table() -> None:
    def subclasses(kind: type[errors.Refusal]) -> list[type[errors.Refusal]]:
        return [kind, *(sub for direct in kind.__subclasses__() for sub in subclasses(direct))]

    for kind in subclasses(errors.Refusal):
        if kind is errors.Refusal:
            continue
        error = Exception.__new__(kind)
        errors.Refusal.__init__(error, "detail")
        if isinstance(error, errors.BookingRuleBroken):
            error.code = RejectionCode.TOO_EARLY
        assert as_problem(error).problem.code != "REFUSED", f"{kind.__name__} has no answer in functions/http.py"
