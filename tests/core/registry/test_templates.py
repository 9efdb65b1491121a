"""Templates: create, list/filter, info, update, delete, and resources made from them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from jupyter_resman.core.errors import ResourceNotFoundError, TemplateError
from jupyter_resman.core.registry import Asset, Consumable, Grid, Stack


@pytest.fixture
def plate_template(registry):
    return registry.create_template(
        Grid(name="Standard 96-well plate", resource_class="plate", rows=8, columns=12,
             attributes={"well_volume": 200, "material": "polystyrene"}),
        "standard_96_well_plate",
        description="96-well polystyrene plate",
        required_overrides=["name"],
        tags=["plate", "96-well", "assay"],
        created_by="lab_manager",
        version="1.0.0",
    )


def test_create_and_use(registry, plate_template):
    assert plate_template.kind == "grid" and plate_template.required_overrides == ("name",)
    plate = registry.create_from_template(
        "standard_96_well_plate", name="Assay plate 001",
        overrides={"attributes": {"experiment_id": "EXP001"}})
    assert isinstance(plate, Grid) and (plate.rows, plate.columns) == (8, 12)
    assert plate.attributes == {
        "well_volume": 200, "material": "polystyrene", "experiment_id": "EXP001",
        "template": "standard_96_well_plate", "template_version": "1.0.0"}
    assert registry.get(plate).name == "Assay plate 001"


def test_missing_required_overrides_are_listed(registry):
    registry.create_template(
        Consumable(name="PBS", resource_class="buffer", quantity=1000, unit="mL",
                   attributes={"pH": 7.4}),
        "pbs", required_overrides=["name", "quantity", "attributes.lot"])
    with pytest.raises(TemplateError, match="needs overrides for quantity, attributes.lot"):
        registry.create_from_template("pbs", name="PBS stock 1")
    assert registry.count() == 0
    stock = registry.create_from_template(
        "pbs", name="PBS stock 1", quantity=5000, overrides={"attributes.lot": "L7"})
    assert (stock.quantity, stock.attributes["lot"], stock.attributes["pH"]) == (5000, "L7", 7.4)
    nested = registry.create_from_template(
        "pbs", overrides={"name": "PBS stock 2", "quantity": 10, "attributes": {"lot": "L8"}})
    assert nested.attributes["lot"] == "L8"


def test_bad_overrides_and_paths(registry, plate_template):
    with pytest.raises(TemplateError, match="cannot be overridden"):
        registry.create_from_template("standard_96_well_plate", name="x", quantity=3)
    with pytest.raises(TemplateError, match="cannot be overridden"):
        registry.create_from_template("standard_96_well_plate", name="x", id="abc")
    with pytest.raises(TemplateError, match="required override 'volume'"):
        registry.create_template(Asset(name="a"), "bad", required_overrides=["volume"])
    with pytest.raises(TemplateError, match="template name"):
        registry.create_template(Asset(name="a"), "")


def test_template_from_a_stored_resource(registry):
    stack = registry.add(Stack(name="Plate storage", resource_class="storage", capacity=20))
    registry.push(stack, Asset(name="inside"))  # contents are not part of a definition
    tpl = registry.create_template(stack.id, "storage_stack", tags=["storage"])
    copy = registry.create_from_template(tpl, name="Incubator stack",
                                         overrides={"attributes": {"temperature": 37}})
    assert copy.capacity == 20 and registry.children(copy) == []


def test_list_filter_info(registry, plate_template):
    registry.create_template(Consumable(name="tips", quantity=96), "tip_box",
                             tags=["tips", "consumable"], created_by="alice")
    assert [t.name for t in registry.list_templates()] == ["standard_96_well_plate", "tip_box"]
    assert [t.name for t in registry.list_templates(kind="consumable")] == ["tip_box"]
    assert [t.name for t in registry.list_templates(tags=["plate", "assay"])] == [
        "standard_96_well_plate"]
    assert registry.list_templates(tags=["plate", "tips"]) == []
    assert [t.name for t in registry.list_templates(created_by="alice")] == ["tip_box"]
    assert registry.templates_by_kind() == {"consumable": ["tip_box"],
                                            "grid": ["standard_96_well_plate"]}
    info = registry.template_info("standard_96_well_plate")
    assert info["created_by"] == "lab_manager" and info["definition"]["rows"] == 8
    json.dumps(info)
    frame = registry.list_templates(as_frame=True)
    assert isinstance(frame, pd.DataFrame) and list(frame["name"]) == [
        "standard_96_well_plate", "tip_box"]


def test_update_and_delete(registry, plate_template):
    updated = registry.update_template(
        "standard_96_well_plate", description="v2 plate", tags=["plate", "v2"], version="1.1.0",
        attributes={"well_volume": 250}, required_overrides=["name", "attributes.batch"])
    assert updated.version == "1.1.0" and updated.tags == ("plate", "v2")
    assert updated.definition["attributes"] == {"well_volume": 250, "material": "polystyrene"}
    assert updated.updated >= plate_template.updated
    with pytest.raises(TemplateError, match="attributes.batch"):
        registry.create_from_template("standard_96_well_plate", name="p")
    assert registry.delete_template("standard_96_well_plate")
    assert not registry.delete_template("standard_96_well_plate")
    with pytest.raises(ResourceNotFoundError, match="list_templates"):
        registry.get_template("standard_96_well_plate")


def test_names_are_unique_unless_replaced(registry, plate_template):
    with pytest.raises(TemplateError, match="exists"):
        registry.create_template(Asset(name="a"), "standard_96_well_plate")
    replaced = registry.create_template(Asset(name="a"), "standard_96_well_plate", replace=True)
    assert replaced.kind == "asset"
