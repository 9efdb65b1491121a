"""History: every change recorded with before/after; filters; going back to a version."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from jupyter_resman.core.errors import CapacityError, RegistryValueError, ResourceNotFoundError
from jupyter_resman.core.registry import Asset, ChangeType, Consumable, Grid, Pool, Registry


def test_every_change_is_recorded(registry):
    buffer = registry.add(Consumable(name="PBS", quantity=10, unit="mL"))
    registry.decrease_quantity(buffer, 4)
    registry.update(buffer, attributes={"lot": "L1"})
    registry.remove(buffer)
    registry.restore_deleted(buffer)
    entries = registry.history(buffer)
    assert [e.change_type for e in entries] == [
        ChangeType.ADDED, ChangeType.UPDATED, ChangeType.UPDATED, ChangeType.REMOVED,
        ChangeType.RESTORED]
    assert [e.version for e in entries] == [1, 2, 3, 4, 5]
    added, decreased, attrs, removed, restored = entries
    assert added.before is None and added.after["quantity"] == 10
    assert decreased.changes() == {"quantity": (10, 6)}
    assert decreased.detail == "decrease_quantity 4"
    assert attrs.changes() == {"attributes": ({}, {"lot": "L1"})}
    assert removed.after["removed_at"] is not None and removed.before["removed_at"] is None
    assert restored.after["removed_at"] is None
    assert all(e.changed_at.tzinfo is not None for e in entries)
    json.dumps([e.to_dict() for e in entries])  # JSON-able for the REST API


def test_history_filters(registry):
    now = [1_700_000_000.0]
    clocked = Registry(registry.session, clock=lambda: now[0])
    try:
        a = clocked.add(Asset(name="a"))
        b = clocked.add(Asset(name="b"))
        now[0] += 100
        clocked.update(a, name="a2")
        now[0] += 100
        clocked.remove(b)
        assert len(clocked.history()) == 4
        assert [e.detail for e in clocked.history(since=1_700_000_050)] == ["set name", "removed"]
        assert len(clocked.history(until=1_700_000_050)) == 2
        assert [e.resource_id for e in clocked.history(change_type="removed")] == [b.id]
        assert len(clocked.history(change_type=["added", ChangeType.REMOVED])) == 3
        newest = clocked.history(newest_first=True, limit=1)
        assert newest[0].change_type is ChangeType.REMOVED
        with pytest.raises(RegistryValueError, match="change type"):
            clocked.history(change_type="exploded")
    finally:
        clocked.close()


def test_history_as_frame(registry):
    tube = registry.add(Asset(name="tube"))
    registry.update(tube, owner="carol")
    frame = registry.history(tube, as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["change_type"]) == ["added", "updated"]
    assert list(frame["name"]) == ["tube", "tube"]
    assert frame["changes"].iloc[1] == ["owner"]


def test_restore_an_earlier_version(registry):
    plate = registry.add(Grid(name="plate", rows=8, columns=12, attributes={"status": "clean"}))
    registry.update(plate, attributes={"status": "used"}, name="plate (used)")
    registry.update(plate, columns=24)
    assert registry.version(plate, 1).attributes == {"status": "clean"}
    back = registry.restore_version(plate, 1)
    assert (back.name, back.columns, back.attributes) == ("plate", 12, {"status": "clean"})
    assert back.version == 4
    last = registry.history(plate)[-1]
    assert last.change_type is ChangeType.RESTORED and last.detail == "restored to version 1"
    with pytest.raises(ResourceNotFoundError, match="no recorded version 9"):
        registry.restore_version(plate, 9)


def test_restoring_a_quantity_respects_its_pool(registry):
    pool = registry.add(Pool(name="reservoir", capacity=10))
    water = registry.push(pool, Consumable(name="water", quantity=8))
    registry.decrease_quantity(water, 6)
    registry.push(pool, Consumable(name="oil", quantity=7))
    with pytest.raises(CapacityError, match="would hold 15"):
        registry.restore_version(water, 2)  # 8 units again: the pool has room for 3
    assert registry.get(water).quantity == 2
    registry.remove_child(pool, "oil")
    assert registry.restore_version(water, 2).quantity == 8


def test_history_outlives_removal(registry):
    tube = registry.add(Asset(name="tube"))
    registry.remove(tube)
    assert [e.change_type.value for e in registry.history(tube)] == ["added", "removed"]
    assert registry.history(tube)[0].resource().name == "tube"
