"""Queries (filters, paging, DataFrames, attribute indexes) and the hierarchy."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from jupyter_resman.core.errors import RegistryError, RegistryValueError, ResourceNotFoundError
from jupyter_resman.core.registry import (
    Asset,
    Collection,
    Consumable,
    Container,
    Grid,
    Queue,
    Registry,
    Stack,
)
from jupyter_resman.core.registry.query import attribute_condition
from jupyter_resman.core.registry.schema import resources


@pytest.fixture
def lab(registry):
    """A small lab: samples of two experiments, buffers, a plate holding two samples."""
    items = {}
    for i in range(6):
        items[f"s{i}"] = registry.add(Asset(
            name=f"sample {i}", resource_class="sample", owner="alice" if i < 3 else "bob",
            attributes={"experiment": "E1" if i % 2 else "E2", "n": i, "flag": i == 0,
                        "tags": ["a", "b"] if i == 5 else None}))
    items["pbs"] = registry.add(Consumable(name="PBS", resource_class="buffer", quantity=5,
                                           attributes={"n": "1"}))
    items["plate"] = registry.add(Grid(name="plate 1", resource_class="plate", rows=2, columns=2))
    registry.set_child(items["plate"], (0, 0), items["s0"])
    registry.set_child(items["plate"], (1, 1), items["s1"])
    return items


def names(found):
    return sorted(r.name for r in found)


def test_filters(registry, lab):
    assert names(registry.query(resource_class="sample")) == [f"sample {i}" for i in range(6)]
    assert names(registry.query(resource_class=["buffer", "plate"])) == ["PBS", "plate 1"]
    assert names(registry.query(kind="consumable")) == ["PBS"]
    assert names(registry.query(kind=Consumable)) == ["PBS"]
    assert names(registry.query(kind=Container)) == ["plate 1"]
    assert names(registry.query(name="sample 3")) == ["sample 3"]
    assert names(registry.query(name="plate*")) == ["plate 1"]
    assert names(registry.query(name="*1")) == ["plate 1", "sample 1"]
    assert names(registry.query(owner="bob")) == ["sample 3", "sample 4", "sample 5"]
    assert names(registry.query(parent=lab["plate"])) == ["sample 0", "sample 1"]
    assert len(registry.query(top_level=True)) == 6
    assert names(registry.query(resource_class="sample", attributes={"experiment": "E1",
                                                                     "n": 3})) == ["sample 3"]


def test_attribute_equality_is_typed(registry, lab):
    assert names(registry.query(attributes={"n": 1})) == ["sample 1"]
    assert names(registry.query(attributes={"n": "1"})) == ["PBS"]
    assert names(registry.query(attributes={"n": 1.0})) == ["sample 1"]
    assert names(registry.query(attributes={"flag": True})) == ["sample 0"]
    assert len(registry.query(attributes={"flag": False})) == 5
    assert names(registry.query(attributes={"n": 0})) == ["sample 0"]  # not the False flags
    assert registry.query(attributes={"flag": 1}) == []  # true is not 1, even after a True query
    assert names(registry.query(attributes={"n": True})) == []
    assert names(registry.query(attributes={"tags": ["a", "b"]})) == ["sample 5"]
    # None matches a JSON null or a missing key.
    assert len(registry.query(attributes={"tags": None})) == 7
    assert len(registry.query(attributes={"missing": None})) == 8


def test_odd_attribute_keys(registry):
    registry.add(Asset(name="x", attributes={"well volume (µL)": 200, "a.b": 1, "it's": "y"}))
    assert len(registry.query(attributes={"well volume (µL)": 200})) == 1
    assert len(registry.query(attributes={"a.b": 1})) == 1
    assert len(registry.query(attributes={"it's": "y"})) == 1


def test_time_filters(registry, lab):
    everything = registry.query(order_by="created_at")
    middle = everything[4].created_at
    assert [r.id for r in registry.query(created_after=middle, order_by="created_at")] == [
        r.id for r in everything[4:]]
    assert len(registry.query(created_before=middle)) == 4
    assert len(registry.query(created_before=middle.isoformat())) == 4
    assert registry.query(created_after=dt.datetime.now() + dt.timedelta(days=1)) == []
    with pytest.raises(RegistryValueError, match="not a time"):
        registry.query(created_after="last tuesday")


def test_removed_filter(registry, lab):
    registry.remove(lab["s4"])
    assert len(registry.query()) == 7
    assert names(registry.query(removed=True)) == ["sample 4"]
    assert len(registry.query(removed=None)) == 8


def test_ordering_and_paging(registry, lab):
    by_name = [r.name for r in registry.query(order_by="name")]
    assert by_name == sorted(by_name)
    assert [r.name for r in registry.query(order_by="-name")] == by_name[::-1]
    pages = [registry.query(order_by="resource_class", limit=3, offset=o) for o in (0, 3, 6)]
    ids = [r.id for page in pages for r in page]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert registry.count(resource_class="sample") == 6
    with pytest.raises(RegistryValueError, match="order_by"):
        registry.query(order_by="attributes")


def test_query_as_frame(registry, lab):
    frame = registry.query(resource_class="sample", as_frame=True)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 6
    assert {"id", "name", "kind", "attributes", "created_at", "parent_id"} <= set(frame.columns)
    assert str(frame["created_at"].dtype).startswith("datetime64")
    assert frame.loc[frame["name"] == "sample 3", "attributes"].iloc[0]["experiment"] == "E1"
    empty = registry.query(resource_class="nothing", as_frame=True)
    assert list(empty.columns) == list(frame.columns) and empty.empty


def test_bad_filters(registry):
    with pytest.raises(RegistryValueError, match="kind="):
        registry.query(kind="spaceship")
    with pytest.raises(RegistryValueError, match="empty list"):
        registry.query(resource_class=[])
    with pytest.raises(RegistryValueError, match="cannot filter"):
        registry.query(attributes={"n": object()})


def _plan(registry, select):
    def explain(conn):
        compiled = select.compile(conn, compile_kwargs={"literal_binds": True})
        if conn.dialect.name == "postgresql":
            # On a tiny table a sequential scan is cheaper; we ask whether the index *can* be used.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # this transaction only
            return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        return "\n".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))

    return registry._db.run(explain, write=True)  # a real transaction, for SET LOCAL


def test_attribute_index_serves_the_query(registry, lab):
    name = registry.index_attribute("experiment")
    assert registry.index_attribute("experiment") == name  # idempotent
    condition = attribute_condition(registry.backend, "experiment", "E1")
    select = sa.select(resources.c.id).where(resources.c.resource_class == "sample", condition)
    assert name in _plan(registry, select)
    assert names(registry.query(resource_class="sample", attributes={"experiment": "E1"})) == [
        "sample 1", "sample 3", "sample 5"]


@pytest.mark.parametrize("key", ["a b", "x'; DROP TABLE resources; --", "", "9lives"])
def test_only_plain_keys_can_be_indexed(registry, key):
    with pytest.raises(RegistryValueError, match="cannot be indexed"):
        registry.index_attribute(key)
    assert registry.count() == 0  # the table is still there


def test_hierarchy(registry):
    rack = registry.add(Collection(name="rack"))
    plate = registry.set_child(rack, "slot 1", Grid(name="plate", rows=2, columns=2))
    tip_box = registry.set_child(rack, "slot 2", Stack(name="tips"))
    a1 = registry.set_child(plate, (0, 0), Asset(name="A1"))
    b2 = registry.set_child(plate, (1, 1), Asset(name="B2"))
    tip = registry.push(tip_box, Asset(name="tip"))
    h = registry.hierarchy(plate)
    assert h.ancestor_ids == [rack.id]
    assert h.descendant_ids == {plate.id: [a1.id, b2.id]}
    assert registry.hierarchy(a1).ancestor_ids == [plate.id, rack.id]
    top = registry.hierarchy(rack, details=True)
    assert top.ancestor_ids == []
    assert set(top.descendant_ids[rack.id]) == {plate.id, tip_box.id}
    assert sorted(top.all_descendants()) == sorted([plate.id, tip_box.id, a1.id, b2.id, tip.id])
    tree = top.tree()
    assert tree["name"] == "rack"
    assert sorted(c["name"] for c in tree["children"]) == ["plate", "tips"]
    assert top.to_dict()["descendant_ids"] == top.descendant_ids
    registry.remove(b2)
    assert registry.hierarchy(plate).descendant_ids == {plate.id: [a1.id]}
    with pytest.raises(ResourceNotFoundError):
        registry.hierarchy("01JAAAAAAAAAAAAAAAAAAAAAAA")


def test_deep_hierarchy_in_one_query_each_way(registry):
    chain = [registry.add(Queue(name="level 0"))]
    for depth in range(1, 150):
        chain.append(registry.push(chain[-1], Queue(name=f"level {depth}")))
    h = registry.hierarchy(chain[-1])
    assert h.ancestor_ids == [c.id for c in reversed(chain[:-1])]
    assert len(registry.hierarchy(chain[0]).all_descendants()) == 149


def test_registry_describe(registry, lab):
    info = registry.describe()
    assert info["resources"] == 8
    assert info["by_kind"] == {"asset": 6, "consumable": 1, "grid": 1}
    assert info["backend"] == registry.backend


def test_clocked_registry_for_time_filters(registry):
    now = [1_700_000_000.0]
    clocked = Registry(registry.session, clock=lambda: now[0])
    try:
        old = clocked.add(Asset(name="old"))
        now[0] += 3600
        clocked.add(Asset(name="new"))
        assert old.created_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
        assert names(clocked.query(created_after=1_700_000_000.5)) == ["new"]
    finally:
        clocked.close()


def test_damaged_parent_links_forming_a_cycle_end_in_an_error(registry, monkeypatch):
    from jupyter_resman.core.registry import _core

    monkeypatch.setattr(_core, "SUBTREE_CAP", 500)  # keep the runaway walk short
    a = registry.add(Collection(name="a"))
    b = registry.set_child(a, "b", Collection(name="b"))
    # A hand edit (or a bug elsewhere) closes a loop: a inside b inside a.
    registry._db.run(lambda c: c.execute(
        resources.update().where(resources.c.id == a.id).values(parent_id=b.id, key="a")))
    with pytest.raises(RegistryError, match="cycle"):
        registry.hierarchy(a)
    with pytest.raises(RegistryValueError, match="cycle"):
        registry.remove(a, recursive=True)
    # Upward walks (the "would it contain itself" check) are bounded by depth too.
    assert registry.set_child(b, "c", Collection(name="c")).parent_id == b.id
