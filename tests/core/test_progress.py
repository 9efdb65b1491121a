"""Progress trees: counting, nesting across threads and tasks, pause, failure,
snapshots, callbacks, and publishing to a real live store read by other processes."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from jupyter_resman.core.errors import ProgressError
from jupyter_resman.core.progress import (
    INTERRUPTED,
    Progress,
    current,
    open_trees,
    progress,
    track,
)
from jupyter_resman.core.progress_render import format_line, format_tree


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture(autouse=True)
def quiet(monkeypatch, session):
    """Draw nothing, and publish (if at all) to the test's isolated default session."""
    monkeypatch.setenv("RESMAN_PROGRESS", "silent")
    yield
    leftovers = open_trees()
    for root in leftovers:
        root.close()
    assert not leftovers, f"test left open progress trees: {leftovers}"


def run_py(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout)


# -- counting and finishing ----------------------------------------------------------


def test_track_counts_every_item_and_finishes_done():
    tracked = track(range(1000), desc="items")
    assert list(tracked) == list(range(1000))
    bar = tracked.bar
    assert (bar.n, bar.total, bar.status, bar.desc) == (1000, 1000, "done", "items")
    assert bar.snapshot()["percent"] == 100.0


def test_total_is_none_without_len_and_counts_initial_with_len():
    gen_bar = track(x for x in range(5))
    assert list(gen_bar) == [0, 1, 2, 3, 4]
    assert gen_bar.bar.total is None and gen_bar.bar.n == 5

    resumed = track(range(3), initial=7)  # three items left of ten
    assert resumed.bar.total == 10 and resumed.bar.n == 7
    list(resumed)
    assert resumed.bar.n == 10 and resumed.bar.snapshot()["initial"] == 7


def test_manual_progress_update_and_close():
    with progress(total=10, desc="manual") as bar:
        bar.update(4)
        bar.update(2.5)
        assert current() is bar
    assert bar.n == 6.5 and bar.status == "done"
    assert current() is None


def test_wrong_use_raises_progress_error():
    bar = Progress(total=3)
    with pytest.raises(ProgressError, match="only moves forward"):
        bar.update(-1)
    with pytest.raises(ValueError):  # ProgressError is a ValueError too
        Progress(total=-5)
    bar.close()
    bar.close()  # idempotent
    with pytest.raises(ProgressError, match="has finished"):
        bar.update()
    with pytest.raises(ProgressError, match="has finished"):
        bar.child(total=2)
    with pytest.raises(ProgressError, match="has finished"):
        bar.pause()


def test_close_keeps_failed_and_closing_parent_finishes_open_children():
    root = Progress(total=2)
    left_open = root.child(total=5, desc="never finished", leave=True)
    failed = root.child(desc="bad", leave=True)
    failed.fail(RuntimeError("disk on fire"))
    failed.close()
    assert failed.status == "failed" and failed.error == "RuntimeError: disk on fire"
    root.close()
    assert left_open.status == "done" and left_open.closed

    root2 = Progress()
    child = root2.child(leave=True)
    root2.fail(KeyboardInterrupt())
    assert child.status == "failed" and root2.error == "KeyboardInterrupt"


def test_numpy_counts_snapshot_as_plain_numbers():
    with Progress(total=np.int64(10)) as bar:
        bar.update(np.int64(3))
        snap = bar.snapshot()
    assert type(snap["n"]) is int and type(snap["total"]) is int
    json.dumps(snap)


# -- nesting ---------------------------------------------------------------------------


def test_track_inside_track_nests_and_finished_children_leave():
    seen = []
    outer = track(range(3), desc="outer")
    for _ in outer:
        inner = track(range(4), desc="inner")
        for _ in inner:
            seen.append([c.desc for c in outer.bar.children])
        assert inner.bar.parent is outer.bar and inner.bar.status == "done"
        assert outer.bar.children == []  # a finished child leaves by default
    assert seen == [["inner"]] * 12
    assert outer.bar.status == "done" and current() is None


def test_child_context_manager_and_leave():
    with Progress(total=2, desc="main") as main:
        with main.child(total=100, desc="sub") as sub:
            sub.update(100)
            assert current() is sub
            assert [c["desc"] for c in main.snapshot()["children"]] == ["sub"]
        kept = main.child(total=1, desc="kept", leave=True)
        kept.close()
        assert main.children == [kept]
        assert current() is main
    assert sub.status == "done"


def test_progress_inside_track_nests_under_it():
    with Progress(desc="root") as root:
        for _ in track(range(2), desc="loop"):
            loop = current()
            bar = progress(total=1, desc="step")
            assert bar.parent is loop and loop.desc == "loop" and bar.root is root
            bar.close()


def test_thread_does_not_nest_unless_context_is_copied():
    results = {}

    def work(key):
        tracked = track(range(100), desc=key)
        results[key] = tracked.bar.parent
        for _ in tracked:
            pass

    with progress(total=1, desc="main") as main:
        plain = threading.Thread(target=work, args=("plain",))
        plain.start()
        plain.join()
        ctx = contextvars.copy_context()
        copied = threading.Thread(target=ctx.run, args=(work, "copied"))
        copied.start()
        copied.join()
    assert results["plain"] is None  # its own tree
    assert results["copied"] is main


def test_threads_updating_one_tree_lose_nothing():
    per_thread, workers = 20_000, 4
    with progress(total=per_thread * workers, desc="all") as main:
        def work(k):
            with main.child(total=per_thread, desc=f"w{k}", leave=True) as mine:
                for _ in range(per_thread):
                    mine.update()
                    main.update()

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, k))
                   for k in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        snap = main.snapshot()
    assert snap["n"] == per_thread * workers
    assert sorted(c["n"] for c in snap["children"]) == [per_thread] * workers


def test_asyncio_tasks_get_their_own_context():
    parents = {}

    async def job(name, steps):
        tracked = track(range(steps), desc=name)
        parents[name] = tracked.bar.parent
        for _ in tracked:
            await asyncio.sleep(0)  # interleave with the other task

    async def main():
        await asyncio.gather(job("a", 5), job("b", 5))
        for _ in track(range(1), desc="outer"):
            # a task created inside an active bar copies the context: it nests
            await asyncio.create_task(job("inner", 2))
            parents["outer"] = current()

    asyncio.run(main())
    assert parents["a"] is None and parents["b"] is None
    assert parents["inner"] is parents["outer"]


# -- pause, rate, ETA -------------------------------------------------------------------


def test_paused_time_is_not_counted_in_rate_or_elapsed():
    clock = FakeClock()
    bar = Progress(total=100, clock=clock)
    clock.advance(10)
    bar.update(10)
    assert bar.snapshot()["rate"] == pytest.approx(1.0)
    bar.pause()
    assert bar.snapshot()["status"] == "paused"
    clock.advance(100)  # a long pause
    snap = bar.snapshot()
    assert snap["elapsed"] == pytest.approx(10.0) and snap["status"] == "paused"
    bar.resume()
    clock.advance(10)
    bar.update(10)
    snap = bar.snapshot()
    assert snap["rate"] == pytest.approx(1.0)
    assert snap["elapsed"] == pytest.approx(20.0)
    assert snap["eta"] == pytest.approx(80.0)
    bar.close()
    final = bar.snapshot()
    assert final["rate"] == pytest.approx(1.0) and final["eta"] == 0.0


def test_pause_applies_to_descendants():
    clock = FakeClock()
    root = Progress(clock=clock)
    child = root.child(total=5)
    root.pause()
    assert child.status == "paused"
    clock.advance(50)
    root.resume()
    assert child.status == "running"
    clock.advance(5)
    child.update(5)
    assert child.snapshot()["elapsed"] == pytest.approx(5.0)
    root.close()


def test_rate_follows_a_change_of_speed_and_ignores_initial():
    clock = FakeClock()
    bar = Progress(total=1000, initial=500, clock=clock)
    assert bar.snapshot()["rate"] is None  # nothing counted yet
    for _ in range(30):  # 30 s at 1 item/s
        clock.advance(1)
        bar.update(1)
        bar.snapshot()
    assert bar.snapshot()["rate"] == pytest.approx(1.0)
    for _ in range(30):  # then 30 s at 10 items/s
        clock.advance(1)
        bar.update(10)
        bar.snapshot()
    assert bar.snapshot()["rate"] == pytest.approx(10.0, rel=0.01)
    bar.close()


# -- failure ---------------------------------------------------------------------------


def test_exception_in_with_block_fails_and_propagates():
    with pytest.raises(ZeroDivisionError):
        with progress(total=3) as bar:
            bar.update()
            1 / 0
    assert bar.status == "failed" and bar.error == "ZeroDivisionError: division by zero"
    assert current() is None


def test_exception_in_tracked_loop_body_fails_the_bar():
    bars = []

    def loop():
        for x in track(range(10)):
            bars.append(current())
            if x == 3:
                raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"):
        loop()
    assert bars[-1].status == "failed" and bars[-1].n == 3
    assert bars[-1].error == INTERRUPTED
    assert current() is None


def test_exception_raised_in_a_called_function_fails_the_bar():
    bars = []

    def explode():
        raise KeyboardInterrupt  # what Jupyter's "interrupt" raises in the body

    with pytest.raises(KeyboardInterrupt):
        for x in track(range(10)):
            bars.append(current())
            if x == 2:
                explode()
    assert bars[-1].status == "failed" and bars[-1].n == 2


def test_break_and_return_leave_the_bar_done():
    bars = []

    def first_big(items):
        for x in track(items):
            bars.append(current())
            if x > 5:
                return x
        return None

    assert first_big(range(10)) == 6
    for x in track(range(10)):
        bars.append(current())
        if x == 4:
            break
    assert [(b.status, b.n) for b in (bars[6], bars[-1])] == [("done", 6), ("done", 4)]


def test_exception_from_the_iterable_fails_with_its_message():
    def items():
        yield 1
        raise OSError("file vanished")

    tracked = track(items(), desc="reading")
    with pytest.raises(OSError):
        for _ in tracked:
            pass
    assert tracked.bar.status == "failed" and tracked.bar.error == "OSError: file vanished"


def test_tracked_as_context_manager_knows_the_exception_exactly():
    with pytest.raises(KeyError):
        with track(range(10), desc="exact") as it:
            for x in it:
                if x == 5:
                    raise KeyError("k")
    assert it.bar.status == "failed" and it.bar.error == "KeyError: 'k'" and it.bar.n == 5

    with track(range(10)) as it2:
        for x in it2:
            if x == 1:
                break
    assert it2.bar.status == "done" and it2.bar.n == 1


def test_nested_failure_marks_inner_and_outer():
    with pytest.raises(RuntimeError):
        with progress(desc="outer") as outer:
            for x in track(range(5), desc="inner"):
                inner = current()
                if x == 1:
                    raise RuntimeError("deep")
    assert inner.status == "failed" and outer.status == "failed"
    assert outer.error == "RuntimeError: deep"


# -- snapshots ---------------------------------------------------------------------------


def test_snapshot_json_round_trip_formats_the_same_line():
    clock = FakeClock()
    root = Progress(total=50, desc="epochs", clock=clock)
    child = root.child(desc="batches", unit="batch")
    nbytes = root.child(total=2_000_000, desc="download", unit="B")
    clock.advance(7.5)
    root.update(12)
    child.update(333)
    nbytes.update(1_500_000)
    child.pause()
    snap = root.snapshot()
    back = json.loads(json.dumps(snap))
    assert back == snap
    for width in (40, 80, 120):
        assert format_line(back, width) == format_line(snap, width)
        assert format_tree(back, width) == format_tree(snap, width)
    assert set(snap) >= {"id", "desc", "n", "total", "unit", "rate", "elapsed", "eta", "status",
                         "percent", "children"}
    assert [c["desc"] for c in snap["children"]] == ["batches", "download"]
    assert snap["children"][0]["status"] == "paused"
    assert str(root) == format_line(root.snapshot())
    root.close()


# -- callbacks ---------------------------------------------------------------------------


def test_callbacks_fire_on_refresh_and_finish():
    clock = FakeClock()
    bar = Progress(total=100, clock=clock, mininterval=1.0)
    updates, finishes = [], []
    bar.on_update(lambda b: updates.append(b.n))
    bar.on_finish(lambda b: finishes.append((b.status, b.n)))
    bar.update(5)
    assert updates == []  # throttled: the refresh interval has not passed
    clock.advance(1.5)
    bar.update(5)
    assert updates == [10]
    clock.advance(1.5)
    bar.update(0)
    assert updates == [10]  # count unchanged: nothing to report
    bar.update(7)
    bar.close()
    assert updates == [10, 17] and finishes == [("done", 17)]
    late = []
    bar.on_finish(late.append)  # registered after the end: runs at once
    assert late == [bar]


def test_failing_callback_is_logged_not_raised(caplog):
    def broken(bar):
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="jupyter_resman.progress"):
        tracked = track(range(100))
        tracked.bar.on_finish(broken)
        assert sum(tracked) == 4950
    assert tracked.bar.status == "done"
    assert "callback bug" in caplog.text


# -- publishing ----------------------------------------------------------------------------


def test_running_tree_is_published_and_finished_tree_marked(session):
    clock = FakeClock()
    root = Progress(total=10, desc="published", clock=clock, publish_interval=0.5)
    child = root.child(total=3, desc="part")
    root.update(2)
    child.update(1)
    assert session.live.progress() == {}  # not yet: short trees never touch the store
    clock.advance(0.6)
    root.update(1)
    root.refresh()
    trees = session.live.progress()[os.getpid()]
    assert [(t["id"], t["n"], t["status"]) for t in trees] == [(root.id, 3, "running")]
    assert trees[0]["children"][0]["desc"] == "part"

    # A separate process (the Jupyter server) reads the same rows.
    out = run_py("""
        import json, sys
        from jupyter_resman.core.live import LiveStore
        live = LiveStore(sys.argv[1])
        print(json.dumps({str(k): v for k, v in live.progress().items()}))
        live.close()
    """, str(session.home.live_db))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)[str(os.getpid())]
    assert seen[0]["desc"] == "published" and seen[0]["n"] == 3

    root.close()
    final = session.live.progress()[os.getpid()][0]
    assert final["status"] == "done" and final["children"] == []


def test_publishing_is_throttled(session):
    clock = FakeClock()
    root = Progress(total=None, clock=clock, publish_interval=0.5, mininterval=0.0)
    writes = []
    original = session.live.publish_progress

    def counting(*args, **kw):
        writes.append(kw.get("finished", False))
        return original(*args, **kw)

    session.live.publish_progress = counting
    for _ in range(200):  # 2 s of updates, one every 10 ms
        clock.advance(0.01)
        root.update()
        root.refresh()
    root.close()
    assert 3 <= writes.count(False) <= 4  # at 0.5, 1.0, 1.5, 2.0 s
    assert writes[-1] is True


def test_short_tree_is_never_published(session):
    for _ in track(range(10)):
        pass
    assert session.live.progress() == {}


def test_explicit_session_receives_the_tree(session, tmp_path):
    from jupyter_resman.core.session import Session

    with Session(home=tmp_path / "other") as other:
        clock = FakeClock()
        root = Progress(desc="elsewhere", session=other, clock=clock)
        clock.advance(1)
        root.refresh()
        assert [t["desc"] for t in other.live.progress()[os.getpid()]] == ["elsewhere"]
        root.close()
    assert session.live.progress() == {}


def test_publish_failure_is_logged_once_and_never_raised(session, caplog):
    session.home.live_db.parent.mkdir(parents=True, exist_ok=True)
    session.home.live_db.mkdir()  # a folder where the database should be: every write fails
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="jupyter_resman.progress"):
        for _ in range(3):
            tracked = track(range(50), clock=clock, publish_interval=0.1)
            for _ in tracked:
                clock.advance(0.05)
                tracked.bar.refresh()
            assert tracked.bar.status == "done"
    warnings = [r for r in caplog.records if "could not be published" in r.getMessage()]
    assert len(warnings) == 1


def test_disk_full_while_publishing_does_not_stop_the_loop(tmp_path):
    # RLIMIT_FSIZE makes every write past 0 bytes fail with EFBIG, as a full disk would.
    out = run_py("""
        import logging, resource, signal, sys
        from jupyter_resman.core.session import Session, set_session
        from jupyter_resman.core.progress import track
        logging.basicConfig(level=logging.WARNING, format="LOG %(name)s %(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        session = Session(home=sys.argv[1])
        set_session(session)
        session.live.publish_process({"ready": True})  # the store exists and works
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        t = [1000.0]
        tracked = track(range(300), renderer="silent", clock=lambda: t[0],
                        publish_interval=0.1, mininterval=0.0)
        total = 0
        for x in tracked:
            t[0] += 0.05
            total += x
        print("done", tracked.bar.status, total)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        session.close()
    """, str(tmp_path / "home"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["done", "done", str(sum(range(300)))]
    warnings = [ln for ln in out.stderr.splitlines() if "could not be published" in ln]
    assert len(warnings) == 1, out.stderr


def test_kernel_process_publishes_progress_the_server_can_read(session, tmp_path):
    go_on, may_exit = tmp_path / "go-on", tmp_path / "may-exit"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys, time
        from jupyter_resman.core.session import Session, set_session
        from jupyter_resman.core.progress import track
        set_session(Session(home=sys.argv[1]))
        go_on, may_exit = sys.argv[2], sys.argv[3]
        def items():
            i = 0
            while not os.path.exists(go_on):  # runs until the reader has seen it
                yield i
                i += 1
        for x in track(items(), desc="kernel-loop", renderer="silent",
                       publish_interval=0.05, mininterval=0.01):
            time.sleep(0.005)
        while not os.path.exists(may_exit):
            time.sleep(0.01)
    """), str(session.home.root), str(go_on), str(may_exit)])
    try:
        def wait_for(predicate):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                trees = session.live.progress().get(child.pid, [])
                if trees and predicate(trees[-1]):
                    return trees[-1]
                time.sleep(0.02)
            raise AssertionError(f"never saw it; store has {session.live.progress()}")

        running = wait_for(lambda t: t["status"] == "running" and t["n"] > 0)
        assert running["desc"] == "kernel-loop" and running["total"] is None
        go_on.touch()
        finished = wait_for(lambda t: t["status"] == "done")
        assert finished["n"] >= running["n"]
    finally:
        may_exit.touch()
        child.wait(timeout=60)
    assert child.returncode == 0
    assert child.pid not in session.live.progress()  # gone with its process


# -- housekeeping ----------------------------------------------------------------------------


def test_open_trees_lists_unfinished_roots():
    bar = Progress(desc="dangling")
    assert bar in open_trees()
    bar.close()
    assert bar not in open_trees()


def test_core_progress_imports_no_jupyter_packages():
    out = run_py("""
        import sys
        import jupyter_resman.core.progress, jupyter_resman.core.progress_render
        bad = [m for m in ("IPython", "ipywidgets", "traitlets", "tornado", "jupyter_server")
               if m in sys.modules]
        print(bad)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_public_names_are_the_functions_whatever_was_imported_first():
    # `import jupyter_resman.core.progress` binds the *module* as core.progress;
    # resman.progress(...) must still make a bar.
    out = run_py("""
        import jupyter_resman.core.progress
        import jupyter_resman as resman
        with resman.progress(total=2, desc="x", renderer="silent", publish=False) as p:
            p.update(2)
        print(type(p).__name__, p.status, resman.track.__module__)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Progress", "done", "jupyter_resman.core.progress"]
