"""The filesystem provider on a real folder: safe paths, atomic writes, temp files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from jupyter_resman.core.errors import ProviderError
from jupyter_resman.core.resources import FileSystemProvider, HealthStatus, PoolConfig
from jupyter_resman.core.resources.providers.filesystem import TEMP_FOLDER


def test_paths_stay_inside_the_folder(tmp_path):
    base, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "escape").symlink_to(outside)
    ws = FileSystemProvider(base).acquire()
    for bad in ("../outside/x", "/etc/passwd", "sub/../../outside", "a\x00b", "sub/escape/x"):
        with pytest.raises(ProviderError):
            ws.write_text(bad, "nope")
    assert list(outside.iterdir()) == []
    assert ws.path("sub/file.txt") == base.resolve() / "sub" / "file.txt"
    with pytest.raises(ProviderError, match="refusing to delete the base folder"):
        ws.delete("")


def test_writes_are_atomic_and_readable(tmp_path):
    ws = FileSystemProvider(tmp_path / "data").acquire()
    ws.write_text("out/result.json", '{"a": 1}')
    ws.write_bytes("out/result.json", b'{"a": 2}')  # replaces in one step
    assert ws.read_text("out/result.json") == '{"a": 2}'
    assert sorted(os.listdir(tmp_path / "data" / "out")) == ["result.json"]  # no leftovers
    with ws.open("log/run.txt", "w") as f:
        f.write("line")
    assert ws.read_bytes("log/run.txt") == b"line"
    ws.temp_file()
    assert ws.listdir() == ["log", "out"]  # the temp folder is not shown
    assert ws.delete("out") and not ws.exists("out") and not ws.delete("out")


def test_temp_files_are_removed_when_the_workspace_is_released(manager, tmp_path):
    provider = FileSystemProvider(tmp_path / "data")
    manager.register_provider("scratch", provider, PoolConfig(max_size=2))
    with manager.use("scratch", owner="cell-1") as ws:
        first = ws.temp_file(suffix=".npy")
        folder = ws.temp_dir()
        (folder / "part-0").write_bytes(b"x" * 100)
        with manager.use("scratch", owner="cell-2") as other:
            theirs = other.temp_file()
            assert theirs.parent != first.parent  # each holder has its own temp folder
        assert not theirs.exists() and first.exists()
    assert not first.exists() and not folder.exists()
    with manager.use("scratch", owner="cell-3") as ws:  # a reused handle works as new
        assert ws.temp_file().exists()
    assert provider.metrics()["temp_removed"] == 4  # top-level entries: 2 + 1 + 1
    manager.unregister("scratch")
    assert list((tmp_path / "data" / TEMP_FOLDER).iterdir()) == []


CRASHER = textwrap.dedent("""
    import os, sys, time
    from jupyter_resman.core.resources import FileSystemProvider
    ws = FileSystemProvider(sys.argv[1]).acquire()
    path = ws.temp_file(suffix=".partial")
    path.write_bytes(b"half done")
    print(path, flush=True)
    time.sleep(60)
""")


def test_temp_files_of_a_killed_process_are_swept(tmp_path):
    base = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(base)], stdout=subprocess.PIPE,
                            text=True)
    try:
        left = proc.stdout.readline().strip()
        assert os.path.exists(left)
        os.kill(proc.pid, signal.SIGKILL)  # no release, no cleanup
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    provider = FileSystemProvider(base)  # a later session opening the folder
    assert provider.swept == 1 and not os.path.exists(left)
    mine = provider.acquire().temp_file()
    assert FileSystemProvider(base).swept == 0 and mine.exists()  # a live process's are kept


def test_health_writes_a_probe_and_reports_space(tmp_path):
    provider = FileSystemProvider(tmp_path / "data")
    report = provider.health_check()
    assert report.status is HealthStatus.HEALTHY and report.details["free_bytes"] > 0
    assert list((tmp_path / "data").iterdir()) == []  # the probe was removed
    full = FileSystemProvider(tmp_path / "data", min_free="1000TB")
    assert full.health_check().status is HealthStatus.DEGRADED
    ws = provider.acquire()
    (tmp_path / "data").rmdir()
    assert provider.health_check().status is HealthStatus.UNHEALTHY
    assert not provider.validate(ws)
    with pytest.raises(ProviderError, match="not a folder"):
        FileSystemProvider(tmp_path / "nope", create=False)


def test_a_released_workspace_refuses_use(tmp_path):
    provider = FileSystemProvider(tmp_path)
    ws = provider.acquire()
    provider.release(ws)
    with pytest.raises(ProviderError, match="released"):
        ws.path("x")
