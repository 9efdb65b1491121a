"""Containers: keys, capacity, LIFO/FIFO, slots, pools, moves and cycles."""

from __future__ import annotations

import pytest

from jupyter_resman.core.errors import (
    CapacityError,
    RegistryValueError,
    ResourceKindError,
    ResourceNotFoundError,
)
from jupyter_resman.core.registry import (
    Asset,
    Collection,
    Consumable,
    Grid,
    Pool,
    Queue,
    Row,
    Slot,
    Stack,
    VoxelGrid,
)


def test_grid_positions(registry):
    plate = registry.add(Grid(name="plate", rows=8, columns=12))
    a1 = registry.set_child(plate, (0, 0), Asset(name="A1"))
    h12 = registry.set_child(plate, "7,11", Asset(name="H12"))
    assert (a1.parent_id, a1.key, h12.key) == (plate.id, "0,0", "7,11")
    assert registry.get_child(plate, (7, 11)) == h12
    assert registry.get_child(plate, (3, 3)) is None
    assert list(registry.contents(plate)) == [(0, 0), (7, 11)]
    with pytest.raises(CapacityError, match="taken by 'A1'"):
        registry.set_child(plate, [0, 0], Asset(name="again"))
    with pytest.raises(CapacityError, match="column must be 0..11"):
        registry.set_child(plate, (0, 12), Asset(name="outside"))
    with pytest.raises(RegistryValueError, match="a \\(row, column\\) pair"):
        registry.set_child(plate, "A1", Asset(name="bad key"))
    # A refused placement adds nothing: the new child went in with it or not at all.
    assert registry.count() == 3
    out = registry.remove_child(plate, (0, 0))
    assert out.parent_id is None and out.key is None
    assert registry.get_child(plate, (0, 0)) is None
    with pytest.raises(ResourceNotFoundError, match="nothing at"):
        registry.remove_child(plate, (0, 0))


def test_contents_sort_numerically(registry):
    row = registry.add(Row(name="rack", length=12))
    for i in (10, 2, 0):
        registry.set_child(row, i, Asset(name=f"tube {i}"))
    assert list(registry.contents(row)) == [0, 2, 10]
    assert [c.name for c in registry.children(row)] == ["tube 0", "tube 2", "tube 10"]


def test_row_and_voxel_keys(registry):
    row = registry.add(Row(name="rack", length=3))
    registry.set_child(row, 2, Asset(name="t"))
    with pytest.raises(CapacityError, match="index must be 0..2"):
        registry.set_child(row, 3, Asset(name="u"))
    cube = registry.add(VoxelGrid(name="cube", rows=2, columns=2, layers=2))
    registry.set_child(cube, (1, 1, 1), Asset(name="v"))
    assert list(registry.contents(cube)) == [(1, 1, 1)]
    with pytest.raises(RegistryValueError):
        registry.set_child(cube, (1, 1), Asset(name="w"))


def test_collection_keys_and_capacity(registry):
    freezer = registry.add(Collection(name="freezer", capacity=2))
    registry.set_child(freezer, "shelf A", Asset(name="box 1"))
    registry.set_child(freezer, 7, Asset(name="box 2"))  # ints become string keys
    assert sorted(registry.contents(freezer)) == ["7", "shelf A"]
    with pytest.raises(CapacityError, match="is full: 2 of 2"):
        registry.set_child(freezer, "shelf C", Asset(name="box 3"))
    with pytest.raises(RegistryValueError):
        registry.set_child(freezer, "", Asset(name="box 4"))


def test_slot_holds_one(registry):
    deck = registry.add(Slot(name="deck"))
    plate = registry.set_child(deck, None, Asset(name="plate"))
    with pytest.raises(CapacityError):
        registry.push(deck, Asset(name="other"))
    assert registry.get_child(deck) == plate
    assert registry.pop(deck) == registry.get(plate)
    with pytest.raises(ResourceNotFoundError, match="is empty"):
        registry.pop(deck)


def test_stack_is_lifo_and_queue_is_fifo(registry):
    stack = registry.add(Stack(name="stack", capacity=3))
    queue = registry.add(Queue(name="queue"))
    for i in range(3):
        registry.push(stack, Asset(name=f"s{i}"))
        registry.push(queue, Asset(name=f"q{i}"))
    with pytest.raises(CapacityError, match="full"):
        registry.push(stack, Asset(name="s3"))
    assert [c.name for c in registry.children(stack)] == ["s0", "s1", "s2"]
    assert [registry.pop(stack).name for _ in range(3)] == ["s2", "s1", "s0"]
    assert [registry.pop(queue).name for _ in range(3)] == ["q0", "q1", "q2"]
    with pytest.raises(ResourceNotFoundError):
        registry.pop(queue)
    with pytest.raises(ResourceKindError, match="push\\(\\)/pop\\(\\)"):
        registry.set_child(stack, 0, Asset(name="x"))


def test_stack_keeps_order_past_many_pushes(registry):
    stack = registry.add(Stack(name="stack"))
    for i in range(12):
        registry.push(stack, Asset(name=f"p{i}"))
    for _ in range(5):
        registry.pop(stack)
    registry.push(stack, Asset(name="late"))
    assert [c.name for c in registry.children(stack)][-2:] == ["p6", "late"]
    assert registry.pop(stack).name == "late"


def test_pop_and_push_are_refused_where_they_do_not_apply(registry):
    plate = registry.add(Grid(name="plate", rows=1, columns=1))
    with pytest.raises(ResourceKindError, match="pop\\(\\) works on"):
        registry.pop(plate)
    with pytest.raises(ResourceKindError, match="push\\(\\) works on"):
        registry.push(plate, Asset(name="x"))
    tube = registry.add(Asset(name="tube"))
    with pytest.raises(ResourceKindError, match="not a container"):
        registry.set_child(tube, "a", Asset(name="y"))


def test_pool_holds_consumables_within_capacity(registry):
    pool = registry.add(Pool(name="reservoir", capacity=100, unit="mL"))
    water = registry.push(pool, Consumable(name="water", quantity=60, unit="mL"))
    assert water.key == "water"
    registry.set_child(pool, "salt", Consumable(name="NaCl", quantity=30, unit="mL"))
    with pytest.raises(CapacityError, match="above its capacity 100"):
        registry.push(pool, Consumable(name="oil", quantity=20, unit="mL"))
    with pytest.raises(ResourceKindError, match="pool of consumables"):
        registry.push(pool, Asset(name="stirrer"))
    with pytest.raises(RegistryValueError, match="measured in g"):
        registry.push(pool, Consumable(name="sugar", quantity=1, unit="g"))
    # Refilling a member may not overflow the pool either.
    with pytest.raises(CapacityError, match="pool 'reservoir' would hold 111"):
        registry.increase_quantity(water, 21)
    assert registry.increase_quantity(water, 10).quantity == 70
    with pytest.raises(CapacityError, match="cannot drop to 50"):
        registry.update(pool, capacity=50)


def test_child_in_one_place_only_unless_moved(registry):
    a = registry.add(Grid(name="a", rows=1, columns=2))
    b = registry.add(Grid(name="b", rows=1, columns=2))
    tube = registry.set_child(a, (0, 0), Asset(name="tube"))
    with pytest.raises(CapacityError, match="already in"):
        registry.set_child(b, (0, 1), tube)
    moved = registry.set_child(b, (0, 1), tube, move=True)
    assert (moved.parent_id, moved.key) == (b.id, "0,1")
    assert registry.get_child(a, (0, 0)) is None
    assert "moved from" in registry.history(tube)[-1].detail
    # Placing it where it already is changes nothing.
    assert registry.set_child(b, (0, 1), tube).version == moved.version


def test_a_container_cannot_contain_itself(registry):
    outer = registry.add(Collection(name="outer"))
    middle = registry.set_child(outer, "m", Collection(name="middle"))
    inner = registry.set_child(middle, "i", Collection(name="inner"))
    with pytest.raises(RegistryValueError, match="contain itself"):
        registry.set_child(inner, "o", outer, move=True)
    with pytest.raises(RegistryValueError, match="contain itself"):
        registry.set_child(outer, "self", outer)


def test_containers_cannot_shrink_below_their_contents(registry):
    plate = registry.add(Grid(name="plate", rows=4, columns=4))
    registry.set_child(plate, (3, 3), Asset(name="corner"))
    with pytest.raises(CapacityError, match="'corner' sits at 3,3"):
        registry.update(plate, rows=2)
    assert registry.update(plate, columns=5).columns == 5
    box = registry.add(Collection(name="box", capacity=3))
    registry.set_child(box, "a", Asset(name="a"))
    registry.set_child(box, "b", Asset(name="b"))
    with pytest.raises(CapacityError, match="cannot shrink to 1"):
        registry.update(box, capacity=1)


def test_placing_into_a_removed_container_is_refused(registry):
    box = registry.add(Collection(name="box"))
    registry.remove(box)
    with pytest.raises(ResourceNotFoundError, match="was removed"):
        registry.set_child(box, "a", Asset(name="a"))
