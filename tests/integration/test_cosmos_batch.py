"""The Cosmos emulator's transactional batch, as devhost serves it (devhost/cosmos_server.js): all or nothing,
in order, with patch and its filter predicate, and the real service's answer to a failed operation (that
operation's own status, 424 for every other). The booking rests on it (docs/bookings.md)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from azure.cosmos import PartitionKey
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosResourceNotFoundError

from shared.adapters.clients import get_clients
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.integration

TAKE_PLACE = [{"op": "incr", "path": "/booked", "value": 1}]
ROOM_LEFT = "FROM c WHERE c.booked < c.capacity"


@pytest.fixture
async def container(provisioned: EmulatorEndpoints) -> Any:
    database = get_clients().database()
    return await database.create_container_if_not_exists(id="batch-test", partition_key=PartitionKey("/pk"))


def new_partition() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


async def absent(container: Any, item: str, partition: str) -> bool:
    try:
        await container.read_item(item, partition_key=partition)
    except CosmosResourceNotFoundError:
        return True
    return False


async def test_a_batch_applies_every_operation_in_order_patch_and_filter_included(container: Any) -> None:
    pk = new_partition()
    await container.create_item({"id": "slot", "pk": pk, "booked": 0, "capacity": 2, "holds": {}})

    results = await container.execute_item_batch([
        ("create", ({"id": "booking", "pk": pk, "status": "confirmed"},)),
        ("patch", ("slot", [*TAKE_PLACE, {"op": "set", "path": "/holds/rbooking", "value": 1}]),
         {"filter_predicate": ROOM_LEFT}),
        ("patch", ("booking", [{"op": "set", "path": "/seen", "value": True}])),  # sees the create before it
        ("read", ("slot",)),
    ], partition_key=pk)

    assert [r["statusCode"] for r in results] == [201, 200, 200, 200]
    assert results[3]["resourceBody"]["booked"] == 1 and results[3]["resourceBody"]["holds"] == {"rbooking": 1}
    assert (await container.read_item("booking", partition_key=pk))["seen"] is True
    assert results[0]["resourceBody"]["_etag"]  # the stored document, with its system properties


async def test_a_failed_filter_fails_the_whole_batch_with_412_and_424_for_the_rest(container: Any) -> None:
    pk = new_partition()
    await container.create_item({"id": "slot", "pk": pk, "booked": 1, "capacity": 1})

    with pytest.raises(CosmosBatchOperationError) as failed:
        await container.execute_item_batch([
            ("create", ({"id": "booking", "pk": pk},)),
            ("patch", ("slot", TAKE_PLACE), {"filter_predicate": ROOM_LEFT}),
            ("upsert", ({"id": "entry", "pk": pk},)),
        ], partition_key=pk)

    assert (failed.value.error_index, failed.value.status_code) == (1, 412)
    assert [r["statusCode"] for r in failed.value.operation_responses] == [424, 412, 424]
    assert await absent(container, "booking", pk) and await absent(container, "entry", pk)  # nothing applied
    assert (await container.read_item("slot", partition_key=pk))["booked"] == 1


async def test_a_create_of_an_existing_id_fails_the_batch_with_409_before_anything_is_taken(container: Any) -> None:
    pk = new_partition()
    await container.create_item({"id": "slot", "pk": pk, "booked": 0, "capacity": 5})
    await container.create_item({"id": "booking", "pk": pk, "type": "fence"})

    with pytest.raises(CosmosBatchOperationError) as failed:
        await container.execute_item_batch([
            ("create", ({"id": "booking", "pk": pk, "type": "booking"},)),
            ("patch", ("slot", TAKE_PLACE), {"filter_predicate": ROOM_LEFT}),
        ], partition_key=pk)

    assert (failed.value.error_index, failed.value.status_code) == (0, 409)
    assert [r["statusCode"] for r in failed.value.operation_responses] == [409, 424]
    assert (await container.read_item("slot", partition_key=pk))["booked"] == 0
    assert (await container.read_item("booking", partition_key=pk))["type"] == "fence"


async def test_a_later_failure_undoes_nothing_it_did_not_do_and_keeps_no_earlier_write(container: Any) -> None:
    pk = new_partition()
    await container.create_item({"id": "slot", "pk": pk, "booked": 0, "capacity": 5, "note": "before"})

    with pytest.raises(CosmosBatchOperationError) as failed:
        await container.execute_item_batch([
            ("patch", ("slot", [*TAKE_PLACE, {"op": "set", "path": "/note", "value": "after"}])),
            ("replace", ("missing", {"id": "missing", "pk": pk})),
        ], partition_key=pk)

    assert (failed.value.error_index, failed.value.status_code) == (1, 404)
    slot = await container.read_item("slot", partition_key=pk)
    assert (slot["booked"], slot["note"]) == (0, "before")


async def test_concurrent_batches_racing_for_the_last_places_take_exactly_capacity_and_write_no_part(
        container: Any) -> None:
    """Two hundred batches at once, each a booking and its place in a slot of ten: ten whole bookings."""
    pk, capacity, racers = new_partition(), 10, 200
    await container.create_item({"id": "slot", "pk": pk, "booked": 0, "capacity": capacity, "holds": {}})

    async def book(n: int) -> bool:
        try:
            await container.execute_item_batch([
                ("create", ({"id": f"booking-{n}", "pk": pk, "type": "booking"},)),
                ("patch", ("slot", [*TAKE_PLACE, {"op": "set", "path": f"/holds/r{n}", "value": n}]),
                 {"filter_predicate": ROOM_LEFT}),
                ("create", ({"id": f"entry-{n}", "pk": pk, "type": "appointment"},)),
            ], partition_key=pk)
        except CosmosBatchOperationError as refused:
            assert (refused.error_index, refused.status_code) == (1, 412)
            return False
        return True

    won = await asyncio.gather(*(book(n) for n in range(racers)))

    winners = {n for n, ok in enumerate(won) if ok}
    assert len(winners) == capacity
    slot = await container.read_item("slot", partition_key=pk)
    assert slot["booked"] == capacity and set(slot["holds"]) == {f"r{n}" for n in winners}
    written = [doc["id"] async for doc in container.query_items(
        "SELECT c.id FROM c WHERE c.pk = @pk AND c.id != 'slot'", parameters=[{"name": "@pk", "value": pk}],
        partition_key=pk)]
    assert sorted(written) == sorted([f"booking-{n}" for n in winners] + [f"entry-{n}" for n in winners])
