"""CheckpointsPanel: every version listed; deletes go through the core after a confirmation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jupyter_resman.widgets import CheckpointsPanel
from jupyter_resman.widgets._display import WIDGET_VIEW


@pytest.fixture
def saved(session):
    cps = session.checkpoints
    cps.save("train", {"step": 1}, description="epoch 1")
    cps.save("train", {"step": 2}, description="epoch 2")
    cps.save("train", {"step": 3})
    cps.save("labels", ["a", "b"])
    return session


@pytest.fixture
def panel(saved):
    p = CheckpointsPanel(saved)
    yield p
    p.close()


def _select(panel, *wanted):
    """Select the rows whose label starts with each of ``wanted`` ("train · v2")."""
    values = [value for label, value in panel.versions.options
              if any(label.startswith(w + " ") for w in wanted)]
    assert len(values) == len(wanted), panel.versions.options
    panel.versions.value = tuple(values)


def test_lists_every_version_newest_first(panel):
    labels = [label for label, _ in panel.versions.options]
    assert [label.split(" · ")[:2] for label in labels] == [
        ["labels", "v1"], ["train", "v3"], ["train", "v2"], ["train", "v1"]]
    assert labels[2].endswith("· epoch 2")
    assert "2 checkpoints, 4 versions" in panel.header.value
    assert panel.delete_versions_button.disabled and panel.delete_names_button.disabled


def test_delete_selected_versions(saved, panel):
    _select(panel, "train · v1", "train · v2")
    assert not panel.delete_versions_button.disabled
    panel.delete_versions_button.click()
    assert panel.confirm.pending.startswith("Delete 2 versions (")
    assert "'train' v1, v2" in panel.confirm.pending
    assert [i.version for i in saved.checkpoints.versions("train")] == [1, 2, 3]
    panel.confirm.confirm_button.click()
    assert [i.version for i in saved.checkpoints.versions("train")] == [3]
    assert saved.checkpoints.load("train") == {"step": 3}
    assert [label.split(" · ")[:2] for label, _ in panel.versions.options] == [
        ["labels", "v1"], ["train", "v3"]]
    assert "Deleted 2 versions" in panel.status.value


def test_delete_whole_checkpoints(saved, panel):
    _select(panel, "train · v3")
    panel.delete_names_button.click()
    assert panel.confirm.pending == "Delete ALL 3 versions of 'train'?"
    panel.confirm.confirm_button.click()
    assert "train" not in saved.checkpoints
    assert saved.checkpoints.names() == ["labels"]
    assert [label.split(" · ")[0] for label, _ in panel.versions.options] == ["labels"]


def test_cancel_deletes_nothing(saved, panel):
    _select(panel, "labels · v1")
    panel.delete_names_button.click()
    panel.confirm.cancel_button.click()
    assert saved.checkpoints.names() == ["labels", "train"]


def test_a_version_saved_by_another_process_appears_after_refresh(saved, panel, home):
    code = textwrap.dedent(f"""
        import jupyter_resman as resman
        with resman.Session(home={str(home)!r}) as s:
            s.checkpoints.save("train", {{"step": 4}}, description="from the other kernel")
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert panel.refresh()
    first_train = next(label for label, _ in panel.versions.options if label.startswith("train"))
    assert first_train.startswith("train · v4") and first_train.endswith("from the other kernel")


def test_selection_survives_a_refresh(panel):
    _select(panel, "train · v2")
    panel.refresh()
    (value,) = panel.versions.value
    assert {v: label for label, v in panel.versions.options}[value].startswith("train · v2")


def test_fallbacks(panel):
    bundle = panel._repr_mimebundle_()
    assert bundle.keys() == {"text/plain", "text/html", WIDGET_VIEW}
    text = bundle["text/plain"].splitlines()
    assert text[0].startswith("Checkpoints: 2 checkpoints, 4 versions")
    assert text[2].lstrip().startswith("train v3")
    assert "<table" in bundle["text/html"] and "epoch 2" in bundle["text/html"]


def test_empty_home(session):
    panel = CheckpointsPanel(session)
    try:
        assert "none saved yet" in panel.header.value
        assert panel.to_text() == "Checkpoints: none saved yet"
    finally:
        panel.close()
