"""Checkpoints: atomic versioned saves, validated loads, safe names, faults 15, 23 and 24."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest

import jupyter_resman as resman
from jupyter_resman.core.errors import (
    CheckpointError,
    CheckpointNameError,
    CheckpointNotFoundError,
    CheckpointWarning,
    InsecureHomeError,
    SecurityWarning,
    SerializationError,
)


@pytest.fixture
def ckpt(session):
    return session.checkpoints


def tmp_files(ckpt):
    return sorted(p.name for p in ckpt.root.rglob(".tmp-*"))


def run_child(code, *args, check=True, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, check=check, timeout=120, **kw)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling for you")


# -- saving and loading -------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_of_python_numpy_and_pandas_state(ckpt, compress):
    state = {"step": 3, "weights": np.arange(100_000, dtype="f8").reshape(1000, 100),
             "frame": pd.DataFrame({"a": range(5), "b": list("abcde")}), "note": "é"}
    info = ckpt.save("train", state, description="step 3", compress=compress)
    assert (info.name, info.version, info.description, info.compressed) == ("train", 1, "step 3",
                                                                            compress)
    assert info.bytes == info.path.stat().st_size and info.complete
    assert len(info.checksum) == 64 and abs(info.time - time.time()) < 60
    back = ckpt.load("train")
    assert back["step"] == 3 and back["note"] == "é"
    np.testing.assert_array_equal(back["weights"], state["weights"])
    pd.testing.assert_frame_equal(back["frame"], state["frame"])
    assert (info.path.stat().st_mode & 0o777) == 0o600


def test_state_with_hundreds_of_arrays(ckpt):
    state = [np.full(100, i) for i in range(600)]
    ckpt.save("many", state)
    back = ckpt.load("many")
    assert len(back) == 600 and all((a == i).all() for i, a in enumerate(back))


def test_compression_shrinks_redundant_state(ckpt):
    zeros = np.zeros(1_000_000)
    assert ckpt.save("z", zeros, compress=True).bytes < ckpt.save("p", zeros).bytes / 10


def test_versions_grow_and_load_picks_newest_or_asked_version(ckpt):
    for step in range(1, 4):
        assert ckpt.save("run", {"step": step}).version == step
    assert ckpt.load("run") == {"step": 3}
    assert ckpt.load("run", version=1) == {"step": 1}
    state, info = ckpt.restore("run", version=2)
    assert state == {"step": 2} and info.version == 2
    assert [i.version for i in ckpt.versions("run")] == [1, 2, 3]


def test_missing_checkpoints(ckpt):
    assert ckpt.load("nothing") is None
    assert ckpt.load("nothing", default="fallback") == "fallback"
    with pytest.raises(CheckpointNotFoundError, match="no valid checkpoint named 'nothing'"):
        ckpt.restore("nothing")
    ckpt.save("run", 1)
    with pytest.raises(CheckpointNotFoundError, match="has no version 7; it has versions 1"):
        ckpt.load("run", version=7)
    with pytest.raises(KeyError):  # CheckpointNotFoundError is a KeyError too
        ckpt.load("run", version=0)
    assert "run" in ckpt and "nothing" not in ckpt and 3 not in ckpt


def test_state_that_cannot_be_pickled_writes_nothing(ckpt):
    ckpt.save("run", "good")
    with pytest.raises(SerializationError, match="no pickling for you"):
        ckpt.save("run", [np.zeros(1000), Unpicklable()])
    assert [i.version for i in ckpt.versions("run")] == [1]
    assert ckpt.load("run") == "good" and tmp_files(ckpt) == []


def test_description_and_meta_are_checked(ckpt):
    with pytest.raises(SerializationError, match="JSON"):
        ckpt.save("run", 1, meta={"when": object()})
    with pytest.raises(TypeError, match="description"):
        ckpt.save("run", 1, description=42)
    with pytest.raises(CheckpointError, match="under 1024 KiB"):
        ckpt.save("run", 1, description="x" * 2_000_000)
    assert ckpt.versions("run") == []
    assert ckpt.save("run", 1, meta={"epoch": 2}).meta == {"epoch": 2}
    assert ckpt.versions("run")[0].meta == {"epoch": 2}


# -- listing, pruning, deleting, rollback ---------------------------------------------------


def test_list_is_a_dataframe_of_every_version(ckpt):
    ckpt.save("b", [1], description="first")
    ckpt.save("a", [2])
    ckpt.save("b", [3])
    frame = ckpt.list()
    assert list(frame.columns) == ["name", "version", "time", "bytes", "description",
                                   "compressed", "complete", "checksum", "meta", "path"]
    assert list(zip(frame["name"], frame["version"])) == [("a", 1), ("b", 1), ("b", 2)]
    assert frame["description"].tolist() == [None, "first", None]
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert ckpt.list("b")["version"].tolist() == [1, 2]
    assert ckpt.list("none").empty
    assert ckpt.names() == ["a", "b"]


def test_prune_keeps_the_newest(ckpt):
    for i in range(7):
        ckpt.save("run", i)
    assert ckpt.prune("run", keep=3) == 4
    assert [i.version for i in ckpt.versions("run")] == [5, 6, 7]
    assert ckpt.prune("run", keep=3) == 0
    assert ckpt.save("run", 99).version == 8  # numbering goes on after a prune
    with pytest.raises(ValueError, match="keep at least 1"):
        ckpt.prune("run", keep=0)


def test_prune_does_not_count_truncated_versions(ckpt):
    for i in range(3):
        ckpt.save("run", np.full(1000, i))
    newest = ckpt.versions("run")[-1].path
    os.truncate(newest, newest.stat().st_size - 100)
    assert ckpt.prune("run", keep=1) == 1  # version 1 goes; 2 (last complete) and 3 stay
    assert [(i.version, i.complete) for i in ckpt.versions("run")] == [(2, True), (3, False)]
    with pytest.warns(CheckpointWarning, match="version 3 .* damaged"):
        assert ckpt.load("run")[0] == 1


def test_delete_a_name_or_some_versions(ckpt):
    for i in range(4):
        ckpt.save("run", i)
    ckpt.save("other", "x")
    assert ckpt.delete("run", version=2) == 1
    assert ckpt.delete("run", [1, 3, 99]) == 2
    assert [i.version for i in ckpt.versions("run")] == [4]
    assert ckpt.delete("run") == 1
    assert ckpt.delete("run") == 0 and ckpt.delete("never") == 0
    assert ckpt.names() == ["other"]
    assert [p.name for p in ckpt.root.iterdir()] == [ckpt.versions("other")[0].path.parent.name]
    assert ckpt.save("run", "again").version == 1


def test_rollback_saves_the_old_state_as_newest(ckpt):
    ckpt.save("run", {"step": 1}, compress=True, meta={"k": 1})
    ckpt.save("run", {"step": 2})
    info = ckpt.rollback("run", 1)
    assert (info.version, info.description, info.compressed, info.meta) == (
        3, "rollback to version 1", True, {"k": 1})
    assert ckpt.load("run") == {"step": 1} and ckpt.load("run", version=2) == {"step": 2}
    with pytest.raises(CheckpointNotFoundError):
        ckpt.rollback("run", 9)


def test_begin_save_encodes_now_and_commits_in_another_thread(ckpt):
    state = {"items": [1, 2]}
    pending = ckpt.begin_save("run", state, description="two items")
    state["items"].append(3)  # too late: the state was pickled by begin_save
    assert ckpt.versions("run") == []  # nothing written yet
    box = {}
    worker = threading.Thread(target=lambda: box.update(info=pending.commit()))
    worker.start()
    worker.join()
    assert box["info"].version == 1 and box["info"].bytes == box["info"].path.stat().st_size
    assert ckpt.load("run") == {"items": [1, 2]}
    with pytest.raises(CheckpointError, match="already committed"):
        pending.commit()
    with pytest.raises(SerializationError):
        ckpt.begin_save("run", 1, meta={"bad": {1, 2}})


def test_versions_are_numbered_when_written(ckpt):
    first = ckpt.begin_save("run", "first")
    second = ckpt.begin_save("run", "second")
    assert second.commit().version == 1 and first.commit().version == 2
    assert ckpt.load("run") == "first"  # the last written is the newest


def test_closed_checkpoints_refuse_work(home):
    s = resman.Session(home=home)
    ckpt = s.checkpoints
    s.close()
    with pytest.raises(CheckpointError, match="closed Session"):
        ckpt.save("run", 1)
    ckpt.close()  # idempotent


def test_session_part_and_lazy_export(session):
    assert session.checkpoints is session.checkpoints
    assert resman.Checkpoints is type(session.checkpoints)


# -- names (fault 15) --------------------------------------------------------------------


NAMES = ["../x", "/abs", "..\\x", "a/b/../../c", ".", "..", ".hidden", "A", "a",
         "ünï cödé 🙂", "x" * 255, "run 1: lr=0.1, seed=7"]


def test_awkward_names_stay_inside_the_home_and_apart(ckpt, home):
    for i, name in enumerate(NAMES):
        ckpt.save(name, i)
    for i, name in enumerate(NAMES):
        assert ckpt.load(name) == i
    folders = list(ckpt.root.iterdir())
    assert len(folders) == len(NAMES) and all(f.parent == ckpt.root for f in folders)
    assert not any(f.name.startswith(".") for f in folders)
    outside = {p for p in home.parent.rglob("*")} - {p for p in home.rglob("*")} - {home}
    assert outside == set()  # nothing was created next to the home
    assert ckpt.names() == sorted(NAMES)


@pytest.mark.parametrize("name", ["", "   ", "a\0b", "line\nbreak", "\x7f", "x" * 256, None, 3,
                                  "\udc80"])
def test_unusable_names_are_refused(ckpt, name):
    with pytest.raises(CheckpointNameError) as info:
        ckpt.save(name, 1)
    assert isinstance(info.value, (ValueError, CheckpointError))
    assert list(ckpt.root.iterdir()) == []


def test_a_folder_replaced_by_a_symlink_is_never_followed(ckpt, tmp_path):
    ckpt.save("run", 1)
    folder = ckpt.versions("run")[0].path.parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.symlink_to(elsewhere)
    with pytest.raises(InsecureHomeError, match="symlink"):
        ckpt.save("run", 2)
    assert list(elsewhere.iterdir()) == []
    # Nor is anything read through it: a version planted at the other end is refused.
    with resman.Session(home=tmp_path / "other") as other:
        planted = other.checkpoints.save("run", 3).path.read_bytes()
    (elsewhere / "v00000001.ckpt").write_bytes(planted)
    with pytest.raises(InsecureHomeError, match="symlink"):
        ckpt.load("run")
    assert ckpt.names() == [] and ckpt.list().empty


def test_a_version_file_replaced_by_a_symlink_is_skipped(ckpt, tmp_path):
    ckpt.save("run", "old")
    info = ckpt.save("run", "new")
    target = tmp_path / "target.ckpt"
    info.path.rename(target)
    info.path.symlink_to(target)
    with pytest.warns(CheckpointWarning, match="symlink"):
        assert ckpt.load("run") == "old"
    with pytest.raises(CheckpointError, match="symlink"):
        ckpt.load("run", version=2)


# -- integrity (faults 14, 24) --------------------------------------------------------------


def test_truncated_newer_version_is_skipped_with_a_warning(ckpt):
    ckpt.save("run", {"step": 1, "w": np.arange(10_000)})
    newest = ckpt.save("run", {"step": 2, "w": np.arange(10_000)}).path
    os.truncate(newest, newest.stat().st_size // 2)
    with pytest.warns(CheckpointWarning, match="version 2 .* truncated"):
        assert ckpt.load("run")["step"] == 1
    with pytest.raises(CheckpointError, match="version 2 of checkpoint 'run'"):
        ckpt.load("run", version=2)
    assert ckpt.list("run")["complete"].tolist() == [True, False]


@pytest.mark.parametrize(("where", "warning"), [
    ("payload", CheckpointWarning),   # a raw array segment: its checksum fails
    ("header", SecurityWarning),      # the metadata: its signature fails
    ("magic", CheckpointWarning),
])
def test_corrupted_newer_version_is_skipped(ckpt, where, warning):
    ckpt.save("run", np.zeros(10_000))
    newest = ckpt.save("run", np.ones(10_000)).path
    data = bytearray(newest.read_bytes())
    at = {"payload": len(data) - 5000, "header": 60, "magic": 0}[where]
    data[at] ^= 0x01
    newest.write_bytes(bytes(data))
    with pytest.warns(warning, match="version 2"):
        assert ckpt.load("run").sum() == 0


def test_an_edited_description_is_detected(ckpt):
    ckpt.save("run", "old", description="first")
    newest = ckpt.save("run", "new", description="second").path
    newest.write_bytes(newest.read_bytes().replace(b'"second"', b'"SECOND"'))
    assert ckpt.list("run")["complete"].tolist() == [True, False]  # listed, as damaged
    with pytest.warns(SecurityWarning, match="signature"):
        assert ckpt.load("run") == "old"


def test_no_valid_version_gives_the_default_with_warnings(ckpt):
    for i in range(2):
        os.truncate(ckpt.save("run", np.arange(1000)).path, 10)
    with pytest.warns(CheckpointWarning) as caught:
        assert ckpt.load("run", default="none") == "none"
    assert len(caught) == 2
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointNotFoundError,
                                                         match="versions 1, 2 failed"):
        ckpt.restore("run")


def test_a_file_moved_to_another_name_or_version_is_refused(ckpt):
    ckpt.save("a", "a1")
    ckpt.save("b", "b1")
    a_file = ckpt.versions("a")[0].path
    b_folder = ckpt.versions("b")[0].path.parent
    (b_folder / "v00000002.ckpt").write_bytes(a_file.read_bytes())
    (a_file.parent / "v00000009.ckpt").write_bytes(a_file.read_bytes())
    with pytest.warns(CheckpointWarning, match="moved or copied"):
        assert ckpt.load("b") == "b1"
    with pytest.warns(CheckpointWarning, match="moved or copied"):
        assert ckpt.load("a") == "a1"
    assert ckpt.names() == ["a", "b"] and len(ckpt.list()) == 2  # the copies are not listed


def test_planted_checkpoint_from_another_key_is_never_unpickled(ckpt, tmp_path):
    marker = tmp_path / "pwned"
    ckpt.save("run", "mine")
    # A checkpoint that runs code when unpickled, made with another home's key, then
    # planted as the newest version of "run" in our home.
    with resman.Session(home=tmp_path / "attacker") as evil:
        evil.checkpoints.save("run", "first")
        planted = evil.checkpoints.save("run", _Exploit(str(marker)))
    folder = ckpt.versions("run")[0].path.parent
    (folder / "v00000002.ckpt").write_bytes(planted.path.read_bytes())
    with pytest.warns(SecurityWarning, match="signature"):
        assert ckpt.load("run") == "mine"
    assert not marker.exists()


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- interrupted saves (fault 23) ---------------------------------------------------------------


CHILD_SAVER = """
    import sys, numpy as np, jupyter_resman as resman
    s = resman.Session(home=sys.argv[1])
    i = 0
    while True:
        i += 1
        s.checkpoints.save("big", np.full(4_000_000, i, dtype="f8"))
        print(i, flush=True)
"""


def test_sigkill_during_a_big_save_leaves_the_previous_version(ckpt, home):
    for _attempt in range(5):
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_SAVER), str(home)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "1"  # one complete version exists
            deadline = time.monotonic() + 60
            while not tmp_files(ckpt):  # now a later one is being written
                assert time.monotonic() < deadline, "the child never started a second save"
                time.sleep(0.001)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait()
        if tmp_files(ckpt):
            break  # killed mid-write (else it finished that save just in time: try again)
    assert tmp_files(ckpt), "never killed during a write"
    value = ckpt.load("big")  # no warning: a temp file is never a version
    assert value.shape == (4_000_000,) and (value == value[0]).all()
    assert int(value[0]) == ckpt.versions("big")[-1].version
    ckpt.save("big", "after")  # the next save of the name sweeps the orphan
    assert tmp_files(ckpt) == []
    assert ckpt.load("big") == "after"


CHILD_INTERRUPTED = """
    import os, sys, traceback, numpy as np, jupyter_resman as resman
    s = resman.Session(home=sys.argv[1])
    s.checkpoints.save("big", "previous")
    print("ready", flush=True)
    try:
        while True:
            s.checkpoints.save("big", np.zeros(8_000_000))
            s.checkpoints.delete("big", s.checkpoints.versions("big")[-1].version)
    except KeyboardInterrupt as exc:
        frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        print("in-save" if "save" in frames else "outside", flush=True)
"""


def test_keyboard_interrupt_during_a_save_cleans_up(ckpt, home):
    for _attempt in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CHILD_INTERRUPTED), str(home)],
            stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        while not tmp_files(ckpt):
            time.sleep(0.001)
        child.send_signal(signal.SIGINT)
        where = child.stdout.readline().strip()
        assert child.wait(timeout=60) == 0
        assert tmp_files(ckpt) == []  # the interrupted save removed its temp file
        state = ckpt.load("big")  # the previous state or a complete new one, never a warning
        assert isinstance(state, str) or state.shape == (8_000_000,)
        if where == "in-save":
            break
        ckpt.delete("big")
    assert where == "in-save"


CHILD_FILE_LIMIT = """
    import json, resource, sys, numpy as np, jupyter_resman as resman
    from jupyter_resman.core.errors import CheckpointError
    s = resman.Session(home=sys.argv[1])
    s.checkpoints.save("run", {"small": 1})
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))
    out = {}
    try:
        s.checkpoints.save("run", np.ones(1_000_000))
    except CheckpointError as exc:
        out["error"] = str(exc)
        out["cause"] = type(exc.__cause__).__name__
    out["after_failure"] = s.checkpoints.load("run")
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    out["retry_version"] = s.checkpoints.save("run", np.ones(1_000_000)).version
    print(json.dumps(out))
"""


def test_file_size_limit_fails_cleanly_and_keeps_the_previous_version(ckpt, home):
    out = json.loads(run_child(CHILD_FILE_LIMIT, home).stdout)
    assert "is full" in out["error"] and "version 1 and older are intact" in out["error"]
    assert out["cause"] == "OSError" and out["after_failure"] == {"small": 1}
    assert out["retry_version"] == 2
    assert tmp_files(ckpt) == []
    assert ckpt.load("run").sum() == 1_000_000


# -- many processes ---------------------------------------------------------------------------


CHILD_WRITER = """
    import sys, jupyter_resman as resman
    s = resman.Session(home=sys.argv[1])
    for seq in range(int(sys.argv[3])):
        s.checkpoints.save("shared", {"writer": sys.argv[2], "seq": seq}, meta={"w": sys.argv[2]})
"""

CHILD_READER = """
    import sys, warnings, jupyter_resman as resman
    warnings.simplefilter("error")  # a damaged version seen by a reader would fail here
    s = resman.Session(home=sys.argv[1])
    seen = 0
    while seen < 50:
        frame = s.checkpoints.list()
        state = s.checkpoints.load("shared")
        assert state is None or set(state) == {"writer", "seq"}
        assert frame.empty or frame["complete"].all()
        seen += state is not None
"""


def test_concurrent_writers_get_distinct_versions_while_a_reader_lists(ckpt, home):
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_WRITER), str(home),
                                 f"w{i}", "15"]) for i in range(4)]
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_READER), str(home)])
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    assert reader.wait(timeout=120) == 0
    infos = ckpt.versions("shared")
    assert [i.version for i in infos] == list(range(1, 61))
    states = [ckpt.load("shared", version=i.version) for i in infos]
    assert sorted((s["writer"], s["seq"]) for s in states) == sorted(
        (f"w{w}", q) for w in range(4) for q in range(15))
    assert all(i.meta["w"] == s["writer"] for i, s in zip(infos, states))


CHILD_DELETER = """
    import sys, jupyter_resman as resman
    s = resman.Session(home=sys.argv[1])
    for _ in range(40):
        s.checkpoints.delete("shared")
"""


def test_deleting_a_name_while_another_process_saves_it(ckpt, home):
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_WRITER), str(home),
                               "w", "60"])
    deleter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_DELETER), str(home)])
    assert writer.wait(timeout=120) == 0 and deleter.wait(timeout=120) == 0
    for info in ckpt.versions("shared"):  # whatever survived is whole
        assert ckpt.load("shared", version=info.version)["writer"] == "w"
    assert tmp_files(ckpt) == []
