"""Resumable loops: interrupted (exceptions, SIGINT, SIGKILL) then resumed to the same results."""

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import jupyter_resman as resman
from jupyter_resman.core.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWarning,
    SerializationError,
)
from jupyter_resman.core.fingerprints import fingerprint
from jupyter_resman.core.progress import current
from jupyter_resman.core.resumable import PART_BYTES, Resumable, resumable

ITEMS = [f"config-{i}" for i in range(60)]
QUIET = {"progress": False, "max_overhead": None}


def label(item):
    return {"item": item, "label": sum(map(ord, item)) % 7}


EXPECTED = [label(item) for item in ITEMS]


def run(session, items=ITEMS, stop_at=None, name="labeling", **kw):
    """One run of the loop under test; raises KeyboardInterrupt at item ``stop_at``."""
    kw = {**QUIET, "every": 10, **kw}
    with resumable(items, name=name, session=session, **kw) as loop:
        for item in loop:
            if item == stop_at:
                raise KeyboardInterrupt
            loop.record(label(item))
    return loop


def interrupted(session, stop_at, **kw):
    with pytest.raises(KeyboardInterrupt):
        run(session, stop_at=stop_at, **kw)


# -- in one process ---------------------------------------------------------------------------


def test_uninterrupted_run_then_a_finished_rerun(session):
    loop = run(session)
    assert (loop.start, loop.done, loop.total, loop.finished) == (0, 60, 60, True)
    assert loop.results == EXPECTED
    again = run(session, stop_at=ITEMS[0])  # would raise if any item ran
    assert (again.start, again.finished, again.results) == (60, True, EXPECTED)
    assert [i.meta["done"] for i in session.checkpoints.versions("labeling")] == [50, 60]


def test_interrupted_loop_resumes_where_it_stopped(session):
    interrupted(session, stop_at="config-25")
    loop = run(session)
    assert loop.start == 25  # saved on interruption, not only every 10 items
    assert loop.results == EXPECTED


def test_plain_for_loop_saves_at_once_when_left_by_an_exception(session):
    gc.disable()  # the save must not wait for the garbage collector
    try:
        with pytest.raises(ZeroDivisionError):
            for i, item in enumerate(resumable(ITEMS, "labeling", session=session, **QUIET)):
                if i == 33:
                    raise ZeroDivisionError
        assert session.checkpoints.versions("labeling")[-1].meta["done"] == 33
    finally:
        gc.enable()
    assert run(session).start == 33


def test_break_keeps_progress_without_the_current_item(session):
    for i, _item in enumerate(loop := resumable(ITEMS, "labeling", session=session,
                                                       **QUIET)):
        if i == 7:
            break
    assert loop.done == 7 and not loop.finished
    assert run(session).start == 7


def test_results_of_an_interrupted_item_are_not_kept_twice(session):
    def go(stop=False):
        with resumable(range(20), "pairs", session=session, every=3, **QUIET) as loop:
            for x in loop:
                loop.record(("first", x))
                if stop and x == 11:
                    raise KeyboardInterrupt
                loop.record(("second", x))
        return loop

    with pytest.raises(KeyboardInterrupt):
        go(stop=True)
    loop = go()
    assert loop.start == 11
    assert loop.results == [(tag, x) for x in range(20) for tag in ("first", "second")]


def test_the_same_object_can_be_iterated_again_after_an_error(session):
    loop = resumable(range(10), "again", session=session, **QUIET)
    with pytest.raises(ValueError):
        for x in loop:
            loop.record(x)
            if x == 4:
                raise ValueError
    assert loop.done == 4 and loop.results == [0, 1, 2, 3]
    for x in loop:
        loop.record(x)
    assert loop.results == list(range(10)) and loop.finished


def test_misuse_is_refused(session):
    loop = resumable(range(3), "misuse", session=session, **QUIET)
    with pytest.raises(CheckpointError, match="outside the loop"):
        loop.record(1)
    it = iter(loop)
    next(it)
    with pytest.raises(CheckpointError, match="already being iterated"):
        iter(loop)
    it.close()
    for kw in ({"every": 0}, {"every": 2.5}, {"keep": 0}, {"max_overhead": 0},
               {"max_overhead": 2}):
        with pytest.raises(ValueError):
            resumable(range(3), "misuse", session=session, **kw)
    assert len(loop) == 3
    with pytest.raises(TypeError, match="no known length"):
        len(resumable(iter(()), "gen", key="k", session=session, **QUIET))


# -- what identifies a loop's input -----------------------------------------------------------


def test_different_input_starts_fresh_and_keeps_the_other_progress(session):
    other = ITEMS[::-1]
    interrupted(session, stop_at="config-30")  # ITEMS: 30 done
    assert run(session, items=other).start == 0  # a different input
    loop = run(session)  # back to the first input: its progress is still there
    assert loop.start == 30 and loop.results == EXPECTED


def test_fresh_forgets_stored_progress(session):
    session.checkpoints.save("labeling", "not a loop's state")
    interrupted(session, stop_at="config-30")
    loop = run(session, fresh=True)
    assert loop.start == 0 and loop.results == EXPECTED
    # Only the loop's own versions were forgotten.
    assert session.checkpoints.load("labeling", version=1) == "not a loop's state"


def test_generators_are_read_into_a_list_once(session):
    def gen():
        yield from ITEMS

    with pytest.raises(KeyboardInterrupt):
        run(session, items=gen(), stop_at="config-12")
    loop = run(session, items=gen())
    assert loop.start == 12 and loop.results == EXPECTED
    assert loop.fingerprint == fingerprint(ITEMS)


def test_key_fingerprints_a_lazy_iterator_instead(session):
    pulled = []

    def gen():
        for item in ITEMS:
            pulled.append(item)
            yield item

    with pytest.raises(KeyboardInterrupt):
        run(session, items=gen(), key="items-v1", stop_at="config-40")
    assert len(pulled) == 41  # not read ahead into a list
    loop = run(session, items=gen(), key="items-v1")
    assert loop.start == 40 and loop.results == EXPECTED
    with pytest.raises(CheckpointError, match="used up"):
        iter(loop)
    assert run(session, items=gen(), key="items-v2").start == 0


def test_order_of_a_dict_or_list_is_part_of_the_input(session):
    a = resumable({"x": 1, "y": 2}, "d", session=session, **QUIET)
    b = resumable({"y": 2, "x": 1}, "d", session=session, **QUIET)
    assert a.fingerprint != b.fingerprint
    assert list(a) == ["x", "y"] and list(b) == ["y", "x"]


def test_sets_are_sorted_so_every_process_sees_one_order(session):
    words = {f"w{i}" for i in range(30)}
    loop = resumable(words, "set", session=session, **QUIET)
    assert list(loop) == sorted(words)
    assert loop.fingerprint == fingerprint(sorted(words))


def test_a_result_changed_after_a_save_does_not_leak_into_it(session):
    with resumable(range(20), "mutating", session=session, every=5, **QUIET) as loop:
        for x in loop:
            loop.record([x])
            if x == 5:
                loop.results[0].append("changed later")  # after the save at 5 was encoded
                break
    again = resumable(range(20), "mutating", session=session, every=5, **QUIET)
    assert again.start == 5 and again.results[0] == [0]


def test_arrays_and_frames_are_used_as_they_are(session):
    arr = np.arange(50)
    frame = pd.DataFrame({"a": range(5)})
    loop = resumable(arr, "arr", session=session, **QUIET)
    assert loop.fingerprint == fingerprint(arr) and loop.total == 50
    assert [int(x) for x in loop] == list(range(50))
    assert resumable(frame, "df", session=session, **QUIET).fingerprint == fingerprint(frame)
    changed = arr.copy()
    changed[-1] = 0
    assert resumable(changed, "arr", session=session, **QUIET).start == 0


# -- checkpoints behind the loop --------------------------------------------------------------


def test_only_the_newest_versions_are_kept(session):
    run(session, every=1, keep=3)
    versions = session.checkpoints.versions("labeling")
    assert [(i.meta["done"], i.meta["finished"]) for i in versions] == [
        (58, False), (59, False), (60, True)]


def test_saves_every_n_items_when_not_throttled(session):
    loop = run(session, items=ITEMS[:35], every=10)
    assert loop.version == 4  # after 10, 20 and 30 items, and at the end


def test_slow_saves_are_spaced_out_to_bound_the_overhead(session):
    # With a tiny overhead budget, the first save makes every later periodic one wait.
    loop = run(session, every=1, max_overhead=1e-9)
    assert loop.version == 2 and loop.results == EXPECTED  # the first save, and the last


def test_damaged_newest_checkpoint_resumes_from_the_previous_one(session):
    interrupted(session, stop_at="config-45")  # saves at 10, 20, 30, 40, then 45
    newest = session.checkpoints.versions("labeling")[-1]
    assert newest.meta["done"] == 45
    os.truncate(newest.path, newest.bytes // 2)
    with pytest.warns(CheckpointWarning, match="damaged"):
        loop = run(session)
    assert loop.start == 40 and loop.results == EXPECTED


# -- results in parts: a save writes only what is new -------------------------------------


def big_results(session, stop_at=None, name="big", n=200, **kw):
    """Items whose 10 KB results outgrow the checkpoint: they move to part files."""
    kw = {**QUIET, "every": 10, **kw}
    with resumable(range(n), name=name, session=session, **kw) as loop:
        for x in loop:
            if x == stop_at:
                raise KeyboardInterrupt
            loop.record(np.full(1250, float(x)))
    return loop


def assert_big(results, n=200):
    assert len(results) == n
    assert all(np.array_equal(r, np.full(1250, float(i))) for i, r in enumerate(results))


def test_saves_stay_small_however_many_results_came_before(session):
    with pytest.raises(KeyboardInterrupt):
        big_results(session, stop_at=150)
    versions = session.checkpoints.versions("big")
    assert versions[-1].meta["done"] == 150
    # Every version holds at most ~PART_BYTES of results; the rest is in parts.
    assert max(v.bytes for v in versions) < PART_BYTES + 40_000
    parts = session.checkpoints.parts("big")
    assert len(parts) >= 4  # 1.5 MB of results in parts of ~256 KB
    loop = big_results(session)
    assert loop.start == 150
    assert_big(loop.results)
    assert_big(big_results(session).results)  # finished: everything comes back from disk


def test_a_damaged_part_resumes_after_the_parts_before_it(session):
    with pytest.raises(KeyboardInterrupt):
        big_results(session, stop_at=150)
    folder = session.checkpoints.versions("big")[-1].path.parent
    parts = sorted(folder.glob("*.part"), key=lambda p: int(p.name.split("-")[2]))
    damaged = parts[1]
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    with pytest.warns(CheckpointWarning, match="resuming after the"):
        loop = big_results(session)
    first_part_done = int(parts[0].name.split("-")[2])
    assert 0 < loop.start == first_part_done < 150
    assert_big(loop.results)  # the items after it ran again
    assert damaged.name not in {p.name for p in folder.glob("*.part")}  # an orphan now: removed


def test_a_part_without_a_version_is_removed_on_resume(session):
    with pytest.raises(KeyboardInterrupt):
        big_results(session, stop_at=100)
    store = session.checkpoints
    fp = Resumable(range(200), "big", session=session, progress=False).fingerprint
    orphan = f"r-{fp[:16]}-100-deadbeef"  # as if killed between a part and its version
    store.write_part("big", orphan, store.encode_part("big", orphan, [b"x"]))
    other = "user-part"  # not a loop's part: left alone
    store.write_part("big", other, store.encode_part("big", other, 1))
    loop = big_results(session)
    assert orphan not in store.parts("big") and other in store.parts("big")
    assert_big(loop.results)


def test_fresh_and_delete_remove_the_parts(session):
    big_results(session)
    assert session.checkpoints.parts("big")
    big_results(session, fresh=True, n=5)
    assert session.checkpoints.parts("big") == []  # 5 small results: no part needed
    big_results(session, name="again")
    assert session.checkpoints.parts("again")
    session.checkpoints.delete("again")
    assert session.checkpoints.parts("again") == []
    assert not session.checkpoints._folder("again").exists()


def test_progress_saved_in_the_first_format_still_resumes(session):
    fp = Resumable(ITEMS, "labeling", session=session, progress=False).fingerprint
    session.checkpoints.save("labeling", {
        "format": 1, "fingerprint": fp, "done": 20, "total": 60, "finished": False,
        "results": EXPECTED[:20]}, meta={"resumable": 1, "fingerprint": fp, "done": 20})
    loop = run(session)
    assert loop.start == 20 and loop.results == EXPECTED
    assert session.checkpoints.versions("labeling")[-1].meta["resumable"] == 2


def test_parts_are_signed_and_bound_to_their_name(session):
    store = session.checkpoints
    store.write_part("n", "p1", store.encode_part("n", "p1", {"a": 1}))
    assert store.read_part("n", "p1") == {"a": 1}
    folder = store._folder("n")
    (folder / "p2.part").write_bytes((folder / "p1.part").read_bytes())  # moved under a new name
    with pytest.raises(CheckpointError, match="signature"):
        store.read_part("n", "p2")
    with pytest.raises(CheckpointNotFoundError):
        store.read_part("n", "p3")
    with pytest.raises(CheckpointError):
        store.write_part("n", "../escape", b"")


def test_unpicklable_results_fail_at_the_first_save(session):
    loop = resumable(range(30), "bad", session=session, every=5, **QUIET)

    def go():
        with loop:
            for x in loop:
                loop.record(lambda x=x: x)

    with pytest.warns(CheckpointWarning, match="cannot be pickled"), \
            pytest.raises(SerializationError):
        go()
    assert loop.done == 5  # it stopped at the first save, not at the end of the loop


def test_a_users_own_checkpoint_of_that_name_is_left_alone(session):
    session.checkpoints.save("labeling", {"mine": True})
    loop = run(session, every=5)
    assert loop.start == 0 and loop.results == EXPECTED
    assert session.checkpoints.load("labeling", version=1) == {"mine": True}


# -- progress bar -----------------------------------------------------------------------------


def test_progress_bar_starts_where_the_loop_stopped(session):
    bar_opts = {"renderer": "silent"}
    interrupted(session, stop_at="config-25", progress=bar_opts)
    with resumable(ITEMS, "labeling", session=session, progress=bar_opts) as loop:
        for item in loop:
            assert current() is loop.bar  # a track() in the body nests under it
            loop.record(label(item))
    bar = loop.bar
    assert (bar.initial, bar.n, bar.total, bar.status) == (25, 60, 60, "done")
    assert loop.results == EXPECTED


def test_progress_bar_of_an_interrupted_loop_is_failed(session):
    loop = resumable(ITEMS, "x", session=session, progress={"renderer": "silent"})
    with pytest.raises(KeyboardInterrupt), loop:
        for item in loop:
            if item == "config-3":
                raise KeyboardInterrupt
    assert (loop.bar.status, loop.bar.n, loop.bar.error) == ("failed", 3, "KeyboardInterrupt")


def test_progress_is_published_for_other_processes(session):
    run(session, progress={"renderer": "silent", "mininterval": 0, "publish_interval": 0})
    trees = session.live.progress()[os.getpid()]
    assert any(tree["desc"] == "labeling" and tree["n"] == 60 for tree in trees)


# -- real processes: SIGKILL, SIGINT, a full disk ----------------------------------------------


CHILD = """
    import json, os, signal, sys, time, jupyter_resman as resman
    home, out, mode, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = resman.Session(home=home)
    items = [f"config-{i}" for i in range(60)]
    with resman.resumable(items, name="labeling", every=10, session=s, progress=False,
                          max_overhead=None) as loop:
        print("start", loop.start, flush=True)
        for i, item in enumerate(loop, start=loop.start):
            if i == at and mode in ("SIGKILL", "SIGINT"):
                os.kill(os.getpid(), getattr(signal, mode))
            if mode != "run":
                time.sleep(0.01)
            loop.record({"item": item, "label": sum(map(ord, item)) % 7})
            print("did", i, flush=True)
    with open(out, "w") as f:
        json.dump(loop.results, f)
"""


def child(home, out, mode="run", at=-1):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), str(home), str(out),
                             mode, str(at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(home, out):
    proc = child(home, out)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    start = int(stdout.splitlines()[0].split()[1])
    with open(out) as f:
        return start, json.load(f)


def test_sigkill_mid_loop_resumes_from_the_last_periodic_save(home, tmp_path):
    out = tmp_path / "out.json"
    proc = child(home, out, "SIGKILL", at=25)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    start, results = finish(home, out)
    # "Interrupted at 25, resumed from the checkpoint at 20" — or from 10 if the write
    # of 20 (done in the background) was still in flight when the process died.
    assert start in (10, 20)
    assert results == EXPECTED


def test_sigkill_from_outside_at_any_moment(home, tmp_path):
    out = tmp_path / "out.json"
    proc = child(home, out, "slow")
    last = -1
    while last < 25:
        last = int(proc.stdout.readline().split()[1])
    proc.kill()
    proc.communicate(timeout=120)
    start, results = finish(home, out)
    assert start % 10 == 0 and 20 <= start <= last + 1
    assert results == EXPECTED


def test_sigint_saves_progress_on_the_way_out(home, tmp_path):
    out = tmp_path / "out.json"
    proc = child(home, out, "SIGINT", at=25)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    start, results = finish(home, out)
    assert start == 25 and results == EXPECTED


def test_sigint_from_outside(home, tmp_path):
    out = tmp_path / "out.json"
    proc = child(home, out, "slow")
    last = -1
    while last < 25:
        last = int(proc.stdout.readline().split()[1])
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert "KeyboardInterrupt" in stderr
    start, results = finish(home, out)
    assert start >= last and start > 20  # the interrupted run's own save, not the periodic one
    assert results == EXPECTED


CHILD_FULL_DISK = """
    import json, resource, sys, jupyter_resman as resman
    s = resman.Session(home=sys.argv[1])
    s.checkpoints.save("warm-up", 0)  # the key and folders exist before the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))
    with resman.resumable(range(40), "big", every=5, session=s, progress=False,
                          max_overhead=None) as loop:
        for x in loop:
            loop.record(bytes(10_000))  # after ~30 items a save no longer fits
    print(json.dumps([len(loop.results), loop.finished]))
"""


def test_a_full_disk_costs_warnings_not_the_loop(home):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD_FULL_DISK), str(home)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [40, True]
    assert "could not save the progress of loop 'big'" in proc.stderr
    assert "is full" in proc.stderr
    with resman.Session(home=home) as s:
        saved = s.checkpoints.versions("big")
        assert saved and saved[-1].meta["done"] < 40  # the last save that fit
        resumed = Resumable(range(40), "big", session=s, progress=False)
        assert resumed.start == saved[-1].meta["done"]


CHILD_BIG = """
    import json, sys, time, jupyter_resman as resman
    home, out = sys.argv[1], sys.argv[2]
    s = resman.Session(home=home)
    with resman.resumable(range(120), "parts", every=3, session=s, progress=False,
                          max_overhead=None) as loop:
        print("start", loop.start, flush=True)
        for i in loop:
            time.sleep(0.003)
            loop.record(bytes([i % 256]) * 30_000)  # a part is sealed every ~9 items
            print("did", i, flush=True)
    with open(out, "w") as f:
        json.dump([[len(r), r[0]] for r in loop.results], f)
"""


def test_sigkill_at_random_moments_while_parts_are_written(home, tmp_path):
    import random

    out = tmp_path / "out.json"
    rng = random.Random(7)
    starts = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_BIG), str(home),
                                 str(out)], stdout=subprocess.PIPE, text=True)
        starts.append(int(proc.stdout.readline().split()[1]))
        target = starts[-1] + rng.randint(5, 25)
        last = -1
        while last < target:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line.split()[1])
        proc.kill()
        proc.communicate(timeout=120)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD_BIG), str(home),
                           str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert starts == sorted(starts) and starts[-1] > 0  # each run went on from a later save
    with open(out) as f:
        assert json.load(f) == [[30_000, i % 256] for i in range(120)]
    with resman.Session(home=home) as s:
        referenced = {p for p in s.checkpoints.parts("parts")}
        assert referenced  # 3.6 MB of results live in parts
