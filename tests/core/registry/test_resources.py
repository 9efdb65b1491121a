"""The resource kinds and CRUD: add, get, update, remove, restore, init, quantities."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest
from ulid import ULID

import jupyter_resman as resman
from jupyter_resman.core.errors import (
    QuantityError,
    RegistryValueError,
    ResourceKindError,
    ResourceNotFoundError,
    VersionConflictError,
)
from jupyter_resman.core.registry import (
    Asset,
    Collection,
    Consumable,
    Container,
    Grid,
    Pool,
    Queue,
    Resource,
    Row,
    Slot,
    Stack,
    VoxelGrid,
    resource_from_dict,
)

from . import _workers

EVERY_KIND = [
    Asset(name="sample A", resource_class="sample", attributes={"compound": "aspirin"}),
    Consumable(name="PBS", resource_class="buffer", quantity=500, capacity=1000, unit="mL"),
    Collection(name="freezer", capacity=10),
    Row(name="tube rack", length=24),
    Grid(name="plate", resource_class="plate", rows=8, columns=12),
    VoxelGrid(name="cube", rows=2, columns=3, layers=4),
    Slot(name="deck 1"),
    Stack(name="plate stack", capacity=20),
    Queue(name="conveyor"),
    Pool(name="reservoir", capacity=100.0, unit="mL"),
]


@pytest.mark.parametrize("resource", EVERY_KIND, ids=lambda r: r.kind)
def test_every_kind_round_trips(registry, resource):
    added = registry.add(resource)
    assert type(added) is type(resource)
    assert ULID.from_str(added.id)
    assert added.version == 1 and added.created == added.updated
    got = registry.get(added.id)
    assert got == added
    for field in resource.extra_fields:
        assert getattr(got, field) == getattr(resource, field)
    # to_dict is JSON-able and rebuilds the same object.
    data = json.loads(json.dumps(got.to_dict()))
    assert data["kind"] == resource.kind and data["created_at"].endswith("+00:00")
    assert resource_from_dict(data) == got


def test_ids_sort_in_creation_order(registry):
    ids = [registry.add(Asset(name=f"a{i}")).id for i in range(50)]
    assert ids == sorted(ids)
    assert [r.id for r in registry.query()] == ids


def test_abstract_kinds_cannot_be_created():
    with pytest.raises(ResourceKindError):
        Resource(name="x")
    with pytest.raises(ResourceKindError):
        Container(name="x")


@pytest.mark.parametrize("bad, message", [
    (Asset(name=""), "needs a name"),
    (Asset(name="x" * 600), "too long"),
    (Asset(name="x", attributes={"v": float("nan")}), "JSON"),
    (Asset(name="x", attributes={"v": np.arange(3)}), "JSON"),
    (Consumable(name="x", quantity=5, capacity=2), "above its capacity"),
    (Consumable(name="x", quantity=-1), "negative"),
])
def test_invalid_resources_are_refused(registry, bad, message):
    with pytest.raises(RegistryValueError, match=message):
        registry.add(bad)
    assert registry.count() == 0


@pytest.mark.parametrize("make", [
    lambda: Grid(name="g", rows=0, columns=3),
    lambda: Row(name="r", length=-1),
    lambda: Stack(name="s", capacity=1.5),
    lambda: Consumable(name="c", quantity="lots"),
    lambda: Consumable(name="c", quantity=float("inf")),
])
def test_invalid_fields_fail_at_construction(make):
    with pytest.raises(RegistryValueError):
        make()


def test_add_refuses_non_resources_and_bad_ids(registry):
    with pytest.raises(ResourceKindError):
        registry.add({"name": "x"})
    with pytest.raises(RegistryValueError, match="not a ULID"):
        registry.add(Asset(name="x", id="my-id"))
    first = registry.add(Asset(name="x"))
    with pytest.raises(RegistryValueError, match="already exists"):
        registry.add(Asset(name="y", id=first.id))


def test_get_missing_is_a_key_error(registry):
    with pytest.raises(ResourceNotFoundError) as info:
        registry.get("01JAAAAAAAAAAAAAAAAAAAAAAA")
    assert isinstance(info.value, KeyError)
    assert not registry.exists("01JAAAAAAAAAAAAAAAAAAAAAAA")


def test_update_fields(registry):
    tube = registry.add(Asset(name="tube", attributes={"a": 1}))
    updated = registry.update(tube, name="tube 1", attributes={"b": 2}, owner="alice")
    assert (updated.name, updated.attributes, updated.owner) == ("tube 1", {"b": 2}, "alice")
    assert updated.version == 2 and updated.updated >= tube.updated
    assert registry.get(tube) == updated


def test_update_of_a_changed_object_is_compare_and_set(registry):
    tube = registry.add(Asset(name="tube", attributes={"status": "new"}))
    mine = registry.get(tube)
    theirs = registry.get(tube)
    theirs.attributes["status"] = "processed"
    registry.update(theirs)
    mine.attributes["status"] = "discarded"
    with pytest.raises(VersionConflictError, match="version 2, not 1"):
        registry.update(mine)
    assert registry.get(tube).attributes == {"status": "processed"}
    fresh = registry.get(tube)
    fresh.attributes["status"] = "discarded"
    assert registry.update(fresh).attributes == {"status": "discarded"}


def test_merge_attributes_keeps_other_keys(registry):
    tube = registry.add(Asset(name="tube", attributes={"a": 1, "b": 2}))
    assert registry.update(tube, merge_attributes={"b": 3, "c": 4}).attributes == {
        "a": 1, "b": 3, "c": 4}


def test_update_refuses_fields_that_are_not_editable(registry):
    tube = registry.add(Asset(name="tube"))
    with pytest.raises(RegistryValueError, match="editable fields"):
        registry.update(tube, parent_id="x")
    with pytest.raises(RegistryValueError, match="editable fields"):
        registry.update(tube, quantity=3)  # an asset has no quantity


def test_update_that_changes_nothing_records_nothing(registry):
    tube = registry.add(Asset(name="tube"))
    assert registry.update(tube, name="tube").version == 1
    assert len(registry.history(tube)) == 1


def test_remove_and_restore(registry):
    tube = registry.add(Asset(name="tube"))
    removed = registry.remove(tube)
    assert removed.is_removed and removed.removed_at is not None
    with pytest.raises(ResourceNotFoundError, match="restore_deleted"):
        registry.get(tube)
    assert registry.get(tube, include_removed=True).is_removed
    assert registry.query() == []
    assert [r.id for r in registry.query(removed=True)] == [tube.id]
    with pytest.raises(ResourceNotFoundError):
        registry.update(tube, name="ghost")
    back = registry.restore_deleted(tube)
    assert not back.is_removed and registry.get(tube).name == "tube"
    assert registry.restore_deleted(tube) == back  # already live: nothing to do


def test_removed_child_leaves_its_place_and_goes_back_if_free(registry):
    plate = registry.add(Grid(name="plate", rows=2, columns=2))
    a = registry.set_child(plate, (0, 0), Asset(name="a"))
    registry.remove(a)
    assert registry.get_child(plate, (0, 0)) is None
    back = registry.restore_deleted(a)
    assert (back.parent_id, back.key) == (plate.id, "0,0")
    registry.remove(a)
    b = registry.set_child(plate, (0, 0), Asset(name="b"))
    back = registry.restore_deleted(a)
    assert back.parent_id is None  # its place was taken
    assert registry.get_child(plate, (0, 0)) == b
    assert "no longer available" in registry.history(a)[-1].detail


def test_removing_a_full_container_needs_recursive(registry):
    rack = registry.add(Collection(name="rack"))
    plate = registry.set_child(rack, "shelf 1", Grid(name="plate", rows=1, columns=2))
    well = registry.set_child(plate, (0, 1), Asset(name="well"))
    with pytest.raises(RegistryValueError, match="recursive=True"):
        registry.remove(rack)
    registry.remove(rack, recursive=True)
    assert registry.query() == []
    registry.restore_deleted(rack)
    assert registry.hierarchy(rack).descendant_ids == {rack.id: [plate.id], plate.id: [well.id]}
    assert registry.get(well).key == "0,1"


def test_init_is_idempotent(registry):
    definition = Consumable(name="Standard buffer", resource_class="reagent", quantity=100)
    first = registry.init(definition)
    second = registry.init({"kind": "consumable", "name": "Standard buffer",
                            "resource_class": "reagent", "quantity": 5})
    assert first.id == second.id and second.quantity == 100
    other_class = registry.init(Consumable(name="Standard buffer", resource_class="stock"))
    assert other_class.id != first.id
    registry.remove(first)
    assert registry.init(definition).id not in (first.id, other_class.id)


def test_concurrent_init_creates_one_resource(home, registry_url, reg_session):
    spawn = multiprocessing.get_context("spawn")
    reg_session.registry  # noqa: B018 - schema ready before the race on the row itself
    start, queue = spawn.Event(), spawn.Queue()
    procs = [spawn.Process(target=_workers.init_resource,
                           args=(str(home), registry_url, start, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(r[0] == "ok" for r in results), results
    assert len({r[1] for r in results}) == 1
    assert reg_session.registry.count(name="shared buffer") == 1


def test_quantities(registry):
    buffer = registry.add(Consumable(name="PBS", quantity=500, capacity=1000, unit="mL"))
    assert registry.decrease_quantity(buffer, 50).quantity == 450
    assert registry.increase_quantity(buffer, 100).quantity == 550
    with pytest.raises(QuantityError, match="insufficient quantity.*550 mL, cannot take 600"):
        registry.decrease_quantity(buffer, 600)
    with pytest.raises(QuantityError, match="above its capacity 1000 mL; add at most 450"):
        registry.increase_quantity(buffer, 451)
    assert registry.get(buffer).quantity == 550
    assert registry.increase_quantity(buffer, 450).quantity == 1000
    assert registry.decrease_quantity(buffer, 1000).quantity == 0


@pytest.mark.parametrize("amount", [0, -5, float("nan"), float("inf"), "5", True])
def test_quantity_amounts_must_be_positive_numbers(registry, amount):
    buffer = registry.add(Consumable(name="PBS", quantity=5))
    with pytest.raises(QuantityError, match="positive finite number"):
        registry.decrease_quantity(buffer, amount)


def test_float_quantities_do_not_drift_below_zero(registry):
    buffer = registry.add(Consumable(name="PBS", quantity=0.3, capacity=0.3))
    for _ in range(3):
        buffer = registry.decrease_quantity(buffer, 0.1)
    assert buffer.quantity == 0.0
    for _ in range(3):
        buffer = registry.increase_quantity(buffer, 0.1)
    assert buffer.quantity == 0.3


def test_quantity_of_a_non_consumable_is_a_kind_error(registry):
    tube = registry.add(Asset(name="tube"))
    with pytest.raises(ResourceKindError, match="only consumables"):
        registry.decrease_quantity(tube, 1)


def test_unbounded_consumable(registry):
    buffer = registry.add(Consumable(name="tap water", quantity=1))
    assert registry.increase_quantity(buffer, 1e9).quantity == 1e9 + 1


def test_default_session_registry(session):
    assert resman.get_session().registry is session.registry
    assert session.registry.backend == "sqlite"
    assert session.registry.describe()["resources"] == 0
