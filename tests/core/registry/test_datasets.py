"""Datasets (the CLAM use): registration, workspaces, CSV lookup and discovery, configs."""

from __future__ import annotations

import json
import logging
import os

import pandas as pd
import pytest

from jupyter_resman.core.errors import (
    InsecureHomeError,
    RegistryValueError,
    ResourceNotFoundError,
)
from jupyter_resman.core.registry import ChangeType, Dataset, DatasetMetadata, describe_csv


def adult(tmp_path, **kw):
    return DatasetMetadata(id="adult", name="Adult income", source_type="csv",
                           file_path=str(tmp_path / "adult.csv"), num_samples=48842,
                           num_features=14, num_classes=2, task_type="classification", **kw)


def test_register_get_list(registry, tmp_path):
    meta = registry.register_dataset(adult(tmp_path, tags=["openml"]))
    assert meta.resource_id and meta.registered_at is not None
    got = registry.get_dataset("adult")
    assert got == meta
    assert (got.num_samples, got.task_type, got.tags) == (48842, "classification", ["openml"])
    stored = registry.get(meta.resource_id)
    assert isinstance(stored, Dataset) and stored.attributes["dataset_id"] == "adult"
    # Datasets are resources: they show up in queries and carry history.
    found = registry.query(kind="dataset", attributes={"task_type": "classification"})
    assert [r.id for r in found] == [meta.resource_id]
    registry.register_dataset(DatasetMetadata(id="housing", name="Housing", task_type="regression"))
    assert [m.id for m in registry.list_datasets()] == ["adult", "housing"]
    assert [m.id for m in registry.list_datasets(task_type="regression")] == ["housing"]
    frame = registry.list_datasets(as_frame=True)
    assert isinstance(frame, pd.DataFrame) and list(frame["id"]) == ["adult", "housing"]
    json.dumps(meta.to_dict())


def test_register_again_updates_and_records(registry, tmp_path):
    first = registry.register_dataset(adult(tmp_path))
    again = registry.register_dataset(adult(tmp_path))
    assert again.resource_id == first.resource_id
    assert len(registry.history(first.resource_id)) == 1  # nothing changed, nothing recorded
    changed = adult(tmp_path)
    changed.num_samples = 100
    registry.register_dataset(changed)
    assert registry.get_dataset("adult").num_samples == 100
    assert registry.history(first.resource_id)[-1].changes()["attributes"][1]["num_samples"] == 100


def test_remove_and_reregister(registry, tmp_path):
    meta = registry.register_dataset(adult(tmp_path))
    folder = registry.workspace("adult")
    registry.remove_dataset("adult")
    with pytest.raises(ResourceNotFoundError):
        registry.get_dataset("adult")
    assert registry.list_datasets() == []
    assert folder.is_dir()  # the files are the user's: never deleted with the registration
    back = registry.register_dataset(adult(tmp_path))
    assert back.resource_id == meta.resource_id
    assert registry.history(meta.resource_id)[-1].change_type is ChangeType.RESTORED


def test_unknown_dataset(registry):
    with pytest.raises(ResourceNotFoundError, match="register_dataset"):
        registry.get_dataset("nope")


def test_workspace_layout(reg_session, tmp_path):
    registry = reg_session.registry
    registry.register_dataset(adult(tmp_path))
    folder = reg_session.workspace("adult")
    assert folder == reg_session.home.datasets_dir / "adult"
    assert (folder / "embeddings").is_dir() and (folder / "cache").is_dir()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["id"] == "adult" and meta["num_features"] == 14
    # A workspace may exist before registration; metadata.json comes with it.
    early = registry.workspace("later")
    assert not (early / "metadata.json").exists()
    registry.register_dataset(DatasetMetadata(id="later", name="Later"))
    assert json.loads((early / "metadata.json").read_text())["name"] == "Later"


@pytest.mark.parametrize("bad", [
    "../escape", "..", ".", "/etc", "a/b", "a\\b", "", "a\x00b", "x" * 201, "-flag", "a..b",
    " space", "caf\u00e9",
])
def test_dataset_ids_never_escape(reg_session, bad):
    registry = reg_session.registry
    before = set(reg_session.home.root.rglob("*"))
    with pytest.raises(RegistryValueError, match="dataset id"):
        registry.workspace(bad)
    with pytest.raises(RegistryValueError, match="dataset id"):
        registry.register_dataset(DatasetMetadata(id=bad, name="x"))
    assert set(reg_session.home.root.rglob("*")) == before
    assert registry.count() == 0


def test_symlinked_workspace_is_refused(reg_session, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, reg_session.home.datasets_dir / "evil")
    with pytest.raises(InsecureHomeError, match="symlink"):
        reg_session.registry.workspace("evil")
    assert list(outside.iterdir()) == []


def write_csv(path, frame):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_find_csv_fallbacks(registry, tmp_path, monkeypatch):
    frame = pd.DataFrame({"a": [1, 2], "target": [0, 1]})
    data = tmp_path / "data"
    registered = write_csv(tmp_path / "elsewhere" / "whatever.csv", frame)
    registry.register_dataset(DatasetMetadata(id="reg", name="r", file_path=str(registered)))
    assert registry.find_csv("reg", search_dirs=[data]) == registered
    in_workspace = write_csv(registry.workspace("ws") / "ws.csv", frame)
    assert registry.find_csv("ws", search_dirs=[]) == in_workspace
    flat = write_csv(data / "flat.csv", frame)
    nested = write_csv(data / "nested" / "nested.csv", frame)
    generic = write_csv(data / "gen" / "data.csv", frame)
    single = write_csv(data / "only" / "train_split.csv", frame)
    upper = write_csv(data / "Upper.csv", frame)
    for name, expected in [("flat", flat), ("nested", nested), ("gen", generic),
                           ("only", single), ("upper", upper), ("flat.csv", flat)]:
        assert registry.find_csv(name, search_dirs=[tmp_path / "empty", data]) == expected
    assert registry.find_csv(str(flat)) == flat  # a path is taken as it is
    monkeypatch.chdir(tmp_path)
    assert registry.find_csv("flat") == flat  # default folders: ., ./data, ./datasets
    with pytest.raises(ResourceNotFoundError) as info:
        registry.find_csv("missing", search_dirs=[data])
    assert str(data / "missing.csv") in str(info.value)
    with pytest.raises(RegistryValueError, match="plain name"):
        registry.find_csv("../flat", search_dirs=[data / "nested"])


def test_describe_csv(tmp_path):
    classes = write_csv(tmp_path / "iris.csv", pd.DataFrame({
        "sepal": [1.0, 2.0, 3.0, 4.0], "petal": [1, 2, 3, 4],
        "Class": ["setosa", "virginica", "setosa", 'ver"si,co\nlor']}))
    meta = describe_csv(classes)
    assert (meta.id, meta.num_samples, meta.num_features) == ("iris", 4, 2)
    assert (meta.target_column, meta.num_classes, meta.task_type) == ("Class", 3, "classification")
    prices = write_csv(tmp_path / "house prices.csv", pd.DataFrame({
        "rooms": range(100), "y": [x * 1.5 for x in range(100)]}))
    meta = describe_csv(prices)
    assert (meta.id, meta.task_type, meta.num_classes) == ("house_prices", "regression", None)
    plain = write_csv(tmp_path / "plain.csv", pd.DataFrame({"a": [1], "b": [2]}))
    meta = describe_csv(plain)
    assert (meta.num_features, meta.task_type, meta.target_column) == (2, None, None)
    with pytest.raises(RegistryValueError, match="no column"):
        describe_csv(plain, target_column="label")
    assert describe_csv(plain, target_column="b").num_classes == 1


def test_discover_and_register_in_bulk(registry, tmp_path, caplog):
    frame = pd.DataFrame({"x": [1, 2, 3], "label": ["a", "b", "a"]})
    write_csv(tmp_path / "lake" / "adult.csv", frame)
    write_csv(tmp_path / "lake" / "more" / "adult.csv", frame)  # same stem, other folder
    write_csv(tmp_path / "lake" / "more" / "deeper" / "adult.csv", frame)
    write_csv(tmp_path / "lake" / "other" / "more" / "adult.csv", frame)  # both names taken
    (tmp_path / "lake" / "empty.csv").write_text("")
    registry.register_dataset(DatasetMetadata(id="taken", name="already here"))
    write_csv(tmp_path / "lake" / "taken.csv", frame)
    with caplog.at_level(logging.WARNING, logger="jupyter_resman.registry"):
        found = registry.discover_datasets([tmp_path / "lake"])
    assert "empty.csv" in caplog.text
    ids = sorted(m.id for m in found)
    assert ids == ["adult", "adult_2", "deeper_adult", "lake_taken", "more_adult"]
    assert all(m.num_samples == 3 and m.num_classes == 2 for m in found)
    assert registry.list_datasets() != []  # discovery alone registers nothing new
    assert len(registry.list_datasets()) == 1
    shallow = registry.discover_datasets([tmp_path / "lake"], recursive=False)
    assert len(shallow) == 2
    registered = registry.register_discovered([tmp_path / "lake"])
    assert len(registered) == 5
    assert len(registry.list_datasets()) == 6
    assert registry.find_csv("more_adult") == tmp_path / "lake" / "more" / "adult.csv"
    with pytest.raises(ResourceNotFoundError, match="not a folder"):
        registry.discover_datasets([tmp_path / "nowhere"])


def test_bulk_registration_is_all_or_none(registry):
    good = DatasetMetadata(id="good", name="Good")
    bad = DatasetMetadata(id="bad", name="")
    with pytest.raises(RegistryValueError, match="needs a name"):
        registry.register_datasets([good, bad])
    assert registry.list_datasets() == []


def test_managed_configs(reg_session, tmp_path):
    registry = reg_session.registry
    source = tmp_path / "jolt_config_adult.json"
    source.write_text('{"k": 1}')
    stored = registry.store_config("jolt", source)
    assert stored == reg_session.home.configs_dir / "jolt" / "jolt_config_adult.json"
    (tmp_path / "templates_adult.yaml").write_text("a: 1\n")
    registry.store_config("tabllm", tmp_path / "templates_adult.yaml")
    registry.store_config("cc18_semantic", source, name="1590.json")
    assert registry.find_config("jolt", "adult") == stored
    assert registry.find_config("jolt", "jolt_config_adult.json") == stored
    assert registry.find_config("tabllm", "adult").name == "templates_adult.yaml"
    assert registry.find_config("cc18_semantic", "1590").name == "1590.json"
    assert sorted(registry.list_configs()) == ["cc18_semantic", "jolt", "tabllm"]
    assert [p.name for p in registry.list_configs("jolt")["jolt"]] == ["jolt_config_adult.json"]
    with pytest.raises(ResourceNotFoundError, match="store_config"):
        registry.find_config("jolt", "diabetes")
    for bad_kind in ("../x", "/abs", "a/b"):
        with pytest.raises(RegistryValueError, match="plain name"):
            registry.config_dir(bad_kind)
    with pytest.raises(RegistryValueError, match="plain name"):
        registry.store_config("jolt", source, name="../../escape.json")
    assert not (reg_session.home.root / "escape.json").exists()
