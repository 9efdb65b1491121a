"""``resman migrate`` / ``%resman migrate``: the shared handler, the CLI and the magic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import diskcache
import numpy as np
import pandas as pd
import pytest

from jupyter_resman.commands import UI, run
from jupyter_resman.commands.cache import Declined
from jupyter_resman.core.errors import MigrationError
from jupyter_resman.core.migrate import LEGACY_ENV_VARS


@pytest.fixture
def legacy(tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    with diskcache.Cache(folder / "dc") as dc:
        dc["a"] = 1
        dc["b"] = np.arange(3)
    np.save(folder / "emb.npy", np.ones(4))
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(folder / "data.csv", index=False)
    return folder


@pytest.fixture
def no_legacy_env(monkeypatch):
    for var in LEGACY_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_dry_run_shows_what_would_be_imported(session, legacy):
    before = files(legacy)
    out = run(["migrate", "--dry-run", "--source", str(legacy)], session)
    text = out.to_text()
    assert "Migration plan: 4 of 4 legacy entries to import" in text
    assert "diskcache" in text and "arrays" in text and "dataset data" in text
    assert "Dry run: nothing was changed" in text
    assert files(legacy) == before and session.cache.stats().entries == 0
    assert not (session.home.root / "migrations.sqlite").exists()
    assert out.data["dry_run"] and out.data["pending"] == 4


def test_import_then_nothing_left(session, legacy):
    out = run(["migrate", "--source", str(legacy)], session)
    assert out.title == "Migrated 4 entries" and out.data["stores"][0]["imported"] == 2
    assert session.cache.get("a", namespace="diskcache") == 1
    assert session.registry.get_dataset("data").num_samples == 2
    again = run(["migrate", "--source", str(legacy)], session)
    assert "Nothing to import" in again.to_text() and again.data["imported"] == 0


def test_legacy_locations_come_from_the_environment(session, legacy, no_legacy_env):
    no_legacy_env.setenv("RESMAN_LEGACY_DIRS", str(legacy))
    text = run(["migrate", "--dry-run"], session).to_text()
    assert f"No --source given: searched the legacy locations RESMAN_LEGACY_DIRS={legacy}" in text


def test_nothing_to_search_is_a_clear_error(session, no_legacy_env):
    with pytest.raises(MigrationError, match="pass --source DIR"):
        run(["migrate"], session)


def test_move_asks_first(session, legacy):
    before = files(legacy)
    questions = []

    def no(question):
        questions.append(question)
        return False

    with pytest.raises(Declined):
        run(["migrate", "--source", str(legacy), "--move"], session, UI(confirm=no))
    assert "DELETE the sources of all 4" in questions[0]
    assert files(legacy) == before and session.cache.stats().entries == 0
    out = run(["migrate", "--source", str(legacy), "--move", "--yes"], session,
              UI(confirm=no))
    assert len(questions) == 1  # --yes did not ask
    assert "sources deleted  4" in out.to_text()
    assert files(legacy) == []


def resman_cli(home, *args):
    env = {k: v for k, v in os.environ.items() if k not in LEGACY_ENV_VARS}
    env["RESMAN_HOME"] = str(home)
    env.pop("RESMAN_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "jupyter_resman.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_cli_json_exit_codes_and_refusal_off_a_terminal(tmp_path, legacy):
    home = tmp_path / "home"
    refused = resman_cli(home, "migrate", "--source", str(legacy), "--move")
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    assert (legacy / "emb.npy").exists()
    done = resman_cli(home, "--json", "migrate", "--source", str(legacy))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sum(s["imported"] for s in report["stores"]) == 4 and not report["dry_run"]
    missing = resman_cli(home, "migrate")
    assert missing.returncode == 1 and "--source" in missing.stderr


def test_magic_runs_the_same_command(session, legacy):
    from tests.test_magics import RecordingPublisher, new_shell

    shell = new_shell()
    publisher = RecordingPublisher(shell=shell)
    original = shell.display_pub
    shell.display_pub = publisher
    shell.run_line_magic("load_ext", "jupyter_resman")
    try:
        shell.run_line_magic("resman", f"migrate --dry-run --source {legacy}")
    finally:
        shell.run_line_magic("unload_ext", "jupyter_resman")
        shell.display_pub = original
    html = publisher.displays[-1]["text/html"]
    assert "Migration plan: 4 of 4" in html and "Dry run" in html
