"""Register import: a bad record is rejected alone with its index, the rest go in, repeats are safe."""

from __future__ import annotations

from typing import Any

from functions.admin_register import decode_records, import_answer
from shared.api.models import NimsImportAnswer
from shared.services.register_import import RegisterImportService
from tests.unit.services.fakes import FakeClock, InMemoryPatientStore


async def imported(service: RegisterImportService, raw: list[Any]) -> NimsImportAnswer:
    """The route's own path: each record decoded at the edge, then the batch through the service."""
    return import_answer(await service.import_records(decode_records(raw)))


def record(number: str, **overrides: Any) -> dict[str, Any]:
    return {"nhsNumber": number, "dateOfBirth": "1960-02-29", "givenName": "Test", "familyName": "Person",
            "postcode": "M1 1AE", **overrides}


async def test_a_bad_record_is_rejected_with_its_index_and_the_others_are_imported() -> None:
    store = InMemoryPatientStore()
    answer = await imported(RegisterImportService(store, FakeClock()), [
        record("9990000018"),
        record("9990000019"),  # wrong check digit
        record("9990000026", dateOfBirth="1960-02-30"),
        "not an object",
        record("9990000034", mobile="not a phone"),
    ])
    assert answer.imported == 1
    assert [(r.index, [e.field for e in r.errors]) for r in answer.rejected] == [
        (1, ["nhsNumber"]), (2, ["dateOfBirth"]), (3, ["body"]), (4, ["mobile"])]
    assert set(store.records) == {"9990000018"}


async def test_error_messages_never_echo_the_rejected_values() -> None:
    answer = await imported(RegisterImportService(InMemoryPatientStore(), FakeClock()),
        [record("9990000019", givenName="")])
    text = answer.model_dump_json()
    assert "9990000019" not in text


async def test_birth_and_vaccination_dates_in_the_future_are_rejected() -> None:
    answer = await imported(RegisterImportService(InMemoryPatientStore(), FakeClock()), [
        record("9990000018", dateOfBirth="2030-01-01"),
        record("9990000026", vaccinations=[{"product": "PFIZER", "dose": 1, "administeredAt": "2030-01-01"}]),
    ])
    assert answer.imported == 0
    assert [e.field for r in answer.rejected for e in r.errors] == ["dateOfBirth", "vaccinations[0].administeredAt"]


async def test_importing_the_same_records_twice_leaves_one_record_each() -> None:
    store = InMemoryPatientStore()
    service = RegisterImportService(store, FakeClock())
    batch = [record("9990000018"), record("9990000026", flags=["carer"])]
    await imported(service, batch)
    await imported(service, batch)
    assert len(store.records) == 2 and store.records["9990000026"].flags == ("carer",)


async def test_within_one_batch_a_later_record_for_the_same_person_wins() -> None:
    store = InMemoryPatientStore()
    await imported(RegisterImportService(store, FakeClock()),
        [record("9990000018", postcode="M1 1AE"), record("9990000018", postcode="LS1 4AP")])
    assert store.records["9990000018"].postcode == "LS1 4AP"
