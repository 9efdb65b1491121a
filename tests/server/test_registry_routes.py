"""``GET /resman/api/registry`` and ``/registry/{id}`` against a real server and a real registry.

The registry is filled through the core, in the test's home: by this process
(another connection than the server's) and by a separate Python process.
"""

from __future__ import annotations

import json

import pytest

from jupyter_resman.core.registry import Asset, Consumable, Grid

UNKNOWN_ID = "01J9ZQ3V5X7K2M4N6P8R0T2W4Y"  # well-formed, never handed out here


def body(response) -> dict:
    return json.loads(response.body)


async def registry(fetch, **params) -> dict:
    response = await fetch("resman", "api", "registry", params=params)
    assert response.code == 200, response.body
    return body(response)


async def item(fetch, resource_id: str) -> dict:
    response = await fetch("resman", "api", "registry", resource_id)
    assert response.code == 200, response.body
    return body(response)


@pytest.fixture
def lab(session, other_process):
    """A plate of three wells, a buffer, and a freezer sample another process registered."""
    reg = session.registry
    plate = reg.add(Grid(name="plate 1", resource_class="plate", rows=8, columns=12,
                         attributes={"experiment": "E7"}))
    wells = [reg.set_child(plate, (0, col), Asset(name=f"A{col + 1}", resource_class="sample"))
             for col in range(3)]
    buffer = reg.add(Consumable(name="PBS buffer", resource_class="reagent", quantity=500,
                                capacity=1000, unit="mL"))
    reg.decrease_quantity(buffer, 50)
    other_id = other_process("""
        import jupyter_resman as r
        from jupyter_resman.core.registry import Asset
        print(r.get_session().registry.add(Asset(name="freezer sample", resource_class="sample")).id)
    """).strip()
    return {"plate": plate, "wells": wells, "buffer": buffer, "other": other_id}


# -- a home without a registry ----------------------------------------------------------------


async def test_a_home_without_a_registry_answers_empty_and_creates_none(fetch, session):
    data = await registry(fetch)
    assert data["exists"] is False
    assert data["resources"] == [] and data["total"] == 0
    assert data["location"] == str(session.home.registry_db)
    assert "asset" in data["kinds"] and "container" in data["kinds"]
    # Parameters are still checked, and an item is simply not there.
    assert (await fetch("resman", "api", "registry", params={"kind": "spaceship"})).code == 400
    response = await fetch("resman", "api", "registry", UNKNOWN_ID)
    assert response.code == 404
    assert "no registry" in body(response)["message"]
    assert not session.home.registry_db.exists()


async def test_the_first_resource_anyone_adds_shows_up(fetch, session, other_process):
    assert (await registry(fetch))["exists"] is False
    other_process("""
        import jupyter_resman as r
        from jupyter_resman.core.registry import Asset
        r.get_session().registry.add(Asset(name="first", resource_class="sample"))
    """)
    data = await registry(fetch)
    assert data["exists"] is True and data["total"] == 1
    assert data["resources"][0]["name"] == "first"


# -- the list -------------------------------------------------------------------------------------


async def test_list_shows_what_every_process_registered_newest_first(fetch, lab):
    data = await registry(fetch)
    assert data["exists"] is True and data["total"] == 6
    assert data["limit"] == 50 and data["offset"] == 0 and data["order"] == "-created_at"
    names = [r["name"] for r in data["resources"]]
    assert names == ["freezer sample", "PBS buffer", "A3", "A2", "A1", "plate 1"]
    plate = data["resources"][-1]
    assert plate["id"] == lab["plate"].id and plate["kind"] == "grid"
    assert plate["rows"] == 8 and plate["attributes"] == {"experiment": "E7"}
    buffer = next(r for r in data["resources"] if r["kind"] == "consumable")
    assert buffer["quantity"] == 450 and buffer["version"] == 2


@pytest.mark.parametrize("params, names", [
    ({"kind": "asset"}, {"A1", "A2", "A3", "freezer sample"}),
    ({"kind": "Container"}, {"plate 1"}),
    ({"class": "sample"}, {"A1", "A2", "A3", "freezer sample"}),
    ({"class": "reagent"}, {"PBS buffer"}),
    ({"name": "sample"}, {"freezer sample"}),  # contains
    ({"name": "a"}, {"A1", "A2", "A3", "plate 1", "freezer sample"}),  # ignoring case (SQLite LIKE)
    ({"name": "A*"}, {"A1", "A2", "A3"}),  # a wildcard pattern of the whole name
    ({"kind": "asset", "class": "sample", "name": "A"}, {"A1", "A2", "A3", "freezer sample"}),
    ({"kind": "grid", "class": "sample"}, set()),
    ({"kind": "", "class": " "}, {"A1", "A2", "A3", "plate 1", "PBS buffer", "freezer sample"}),
])
async def test_filters(fetch, lab, params, names):
    data = await registry(fetch, **params)
    assert {r["name"] for r in data["resources"]} == names
    assert data["total"] == len(names)


async def test_children_of_a_container(fetch, lab):
    data = await registry(fetch, parent=lab["plate"].id, order="name")
    assert [r["name"] for r in data["resources"]] == ["A1", "A2", "A3"]
    assert all(r["parent_id"] == lab["plate"].id for r in data["resources"])
    assert (await registry(fetch, parent=UNKNOWN_ID))["total"] == 0


async def test_pages_cover_every_match_once(fetch, lab):
    seen = []
    for offset in range(0, 8, 4):
        data = await registry(fetch, limit="4", offset=str(offset), order="name")
        assert data["total"] == 6 and data["limit"] == 4 and data["offset"] == offset
        seen += [r["name"] for r in data["resources"]]
    assert seen == ["A1", "A2", "A3", "PBS buffer", "freezer sample", "plate 1"]  # binary order
    assert (await registry(fetch, offset="100"))["resources"] == []


async def test_removed_resources_only_when_asked(fetch, lab, session):
    session.registry.remove(lab["buffer"])
    assert "PBS buffer" not in {r["name"] for r in (await registry(fetch))["resources"]}
    removed = await registry(fetch, removed="true")
    assert [r["name"] for r in removed["resources"]] == ["PBS buffer"]
    assert removed["resources"][0]["removed_at"] is not None
    assert (await registry(fetch, removed="any"))["total"] == 6


@pytest.mark.parametrize("params, fragment", [
    ({"kind": "spaceship"}, "not a kind"),
    ({"removed": "maybe"}, "removed="),
    ({"limit": "0"}, "limit="),
    ({"limit": "many"}, "limit="),
    ({"limit": "100000"}, "limit="),
    ({"offset": "-1"}, "offset="),
    ({"order": "colour"}, "order="),
    ({"order": "-; DROP TABLE resources"}, "order="),
    ({"parent": "plate 1"}, "not a registry id"),
    ({"parent": "ILOU0000000000000000000000"}, "not a registry id"),
])
async def test_bad_parameters_are_400(fetch, lab, params, fragment):
    response = await fetch("resman", "api", "registry", params=params)
    assert response.code == 400, response.body
    assert fragment in body(response)["message"]


async def test_unknown_parameters_such_as_a_cache_buster_are_ignored(fetch_raw, lab):
    response = await fetch_raw("resman/api/registry?1712345678901&kind=grid")
    assert response.code == 200
    assert [r["name"] for r in json.loads(response.body)["resources"]] == ["plate 1"]


# -- one resource -------------------------------------------------------------------------------


async def test_a_well_shows_its_place_and_history(fetch, lab):
    well = lab["wells"][1]
    data = await item(fetch, well.id)
    assert data["resource"]["name"] == "A2" and data["resource"]["key"] == well.key
    assert data["hierarchy"]["ancestor_ids"] == [lab["plate"].id]
    assert data["hierarchy"]["descendants"] == 0
    assert [a["name"] for a in data["ancestors"]] == ["plate 1"]
    assert data["children"] == [] and data["children_total"] == 0
    # Added, then placed in the plate: newest first, each with what changed.
    assert [h["change_type"] for h in data["history"]] == ["updated", "added"]
    assert [h["version"] for h in data["history"]] == [2, 1]
    assert data["history"][0]["changes"]["parent_id"] == [None, lab["plate"].id]


async def test_a_container_lists_its_children(fetch, lab):
    data = await item(fetch, lab["plate"].id)
    assert data["ancestors"] == [] and data["hierarchy"]["ancestor_ids"] == []
    assert data["hierarchy"]["descendants"] == 3
    assert [c["name"] for c in data["children"]] == ["A1", "A2", "A3"]
    assert data["children_total"] == 3


async def test_history_follows_changes_made_elsewhere(fetch, lab, other_process):
    other_process(f"""
        import jupyter_resman as r
        r.get_session().registry.update({lab["other"]!r}, attributes={{"box": 7}})
    """)
    data = await item(fetch, lab["other"])
    assert data["resource"]["attributes"] == {"box": 7} and data["resource"]["version"] == 2
    newest = data["history"][0]
    assert newest["change_type"] == "updated"
    assert newest["changes"]["attributes"] == [{}, {"box": 7}]


async def test_a_removed_resource_is_still_shown(fetch, lab, session):
    session.registry.remove(lab["buffer"])
    data = await item(fetch, lab["buffer"].id)
    assert data["resource"]["removed_at"] is not None
    assert data["hierarchy"] is None and data["children"] == []
    assert data["history"][0]["change_type"] == "removed"


async def test_ids_are_case_insensitive(fetch, lab):
    data = await item(fetch, lab["plate"].id.lower())
    assert data["resource"]["id"] == lab["plate"].id


@pytest.mark.parametrize("path, code, fragment", [
    (UNKNOWN_ID, 404, "no resource with id"),
    ("not-a-ulid", 400, "not a registry id"),
    ("01J9ZQ3V5X7K2M4N6P8R0T2W4Y%2F..%2F..", 400, "not a registry id"),
    ("a%00b", 400, "not a registry id"),
])
async def test_bad_and_unknown_ids(fetch_raw, lab, path, code, fragment):
    response = await fetch_raw(f"resman/api/registry/{path}")
    assert response.code == code, response.body
    assert fragment in json.loads(response.body)["message"]


async def test_the_registry_routes_are_read_only(fetch, lab, session):
    before = (await registry(fetch, removed="any"))["resources"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in (("registry",), ("registry", lab["plate"].id)):
            response = await fetch("resman", "api", *path, method=method,
                                   body=b"{}" if method != "DELETE" else None,
                                   allow_nonstandard_methods=True)
            assert response.code == 405, (method, path)
    assert (await registry(fetch, removed="any"))["resources"] == before
    assert session.registry.count() == 6
