"""``resman registry …`` / ``%resman registry …`` through the shared parser."""

import json

import pytest

from jupyter_resman.commands import run
from jupyter_resman.core.errors import ResourceNotFoundError
from jupyter_resman.core.registry.resources import Consumable, Grid


@pytest.fixture
def filled(session):
    registry = session.registry
    plate = registry.add(Grid(name="plate 1", rows=2, columns=3, resource_class="96-well"))
    buffer = registry.add(Consumable(name="buffer", quantity=5, capacity=10, unit="mL"))
    registry.update(buffer, attributes={"lot": "A1"})
    return plate, buffer


def test_list_and_filters(session, filled):
    out = run(["registry"], session)
    assert out.data["total"] == 2 and "plate 1" in out.to_text() and "buffer" in out.to_text()
    grids = run(["registry", "list", "--kind", "grid"], session)
    assert [r["name"] for r in grids.data["resources"]] == ["plate 1"]
    named = run(["registry", "list", "--name", "buf*"], session)
    assert named.data["total"] == 1
    json.dumps(out.data)  # --json output must serialise


def test_show_and_history(session, filled):
    plate, buffer = filled
    shown = run(["registry", "show", plate.id], session)
    assert shown.fields["rows"] == "2" and shown.fields["resource_class"] == "96-well"
    history = run(["registry", "history", buffer.id], session)
    assert list(history.table["change"]) == ["updated", "added"]
    assert "attributes" in history.table["changed fields"].iloc[0]


def test_unknown_id_is_a_clean_error(session, filled):
    with pytest.raises(ResourceNotFoundError):
        run(["registry", "show", "01JZZZZZZZZZZZZZZZZZZZZZZZ"], session)


def test_show_names_where_a_resource_sits(session):
    from jupyter_resman.core.registry.resources import Asset, Collection

    registry = session.registry
    rack = registry.add(Collection(name="rack"))
    tube = registry.add(Asset(name="tube"))
    registry.set_child(rack, "a1", tube)
    shown = run(["registry", "show", tube.id], session)
    assert rack.id in shown.fields["inside"]
