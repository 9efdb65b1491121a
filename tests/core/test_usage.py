"""The psutil sampling path: process trees (real child processes) and the system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import psutil

from jupyter_resman.core import usage
from jupyter_resman.core.usage import ProcessTreeSampler, SystemSampler, system_usage

PY = sys.executable


def spawn(code: str, **kwargs) -> subprocess.Popen:
    """A Python child that prints one line when ready, then runs ``code``."""
    return subprocess.Popen([PY, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, **kwargs)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            stream.close()


# The grandchild says when it is up: a process just past exec() has next to no RSS yet.
TREE = """
    import subprocess, sys
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    grandchild.stdout.readline()
    print(grandchild.pid, flush=True)
    sys.stdin.read()
    grandchild.kill(); grandchild.wait()
"""


def test_children_and_grandchildren_count():
    child = spawn(TREE)
    try:
        grandchild = int(child.stdout.readline())
        assert {child.pid, grandchild} <= set(usage._descendants(os.getpid()))
        sampler = ProcessTreeSampler()
        tree = sampler.sample([child.pid])[child.pid]
        assert tree.children == 1
        assert tree.rss > tree.rss_self > 0
        assert tree.threads >= 2
        mine = sampler.sample([os.getpid()])[os.getpid()]
        assert mine.children >= 2
        assert mine.rss >= mine.rss_self + tree.rss
    finally:
        stop(child)


def test_fallback_walk_finds_the_same_descendants(monkeypatch):
    child = spawn(TREE)
    try:
        int(child.stdout.readline())
        fast = sorted(usage._descendants(os.getpid()))
        monkeypatch.setattr(usage, "_PROC_CHILDREN", False)  # as on a kernel without the file
        assert sorted(usage._descendants(os.getpid())) == fast
    finally:
        stop(child)


def test_dead_and_unknown_pids_are_left_out():
    child = spawn("print('ready', flush=True)")
    child.stdout.readline()
    stop(child)
    sampler = ProcessTreeSampler()
    result = sampler.sample([os.getpid(), child.pid, os.getpid()])
    assert list(result) == [os.getpid()]


def test_zombie_children_do_not_break_sampling():
    # The child must still be alive at kill(): Popen.kill() polls first, and would reap a
    # child that had already exited (then there is no zombie to see).
    child = spawn("import time; print('ready', flush=True); time.sleep(60)")
    try:
        child.stdout.readline()
        child.kill()
        # Not reaped yet: a zombie in our tree until wait().
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "child did not become a zombie"
            time.sleep(0.01)
        mine = ProcessTreeSampler().sample([os.getpid()])[os.getpid()]
        assert mine.rss >= mine.rss_self
    finally:
        stop(child)


def test_children_vanishing_mid_walk_are_skipped():
    # A shell spawning short-lived processes as fast as it can: the walk keeps
    # meeting pids that are gone by the time they are read.
    churn = subprocess.Popen(["sh", "-c", "while :; do /bin/true; done"])
    try:
        sampler = ProcessTreeSampler()
        for _ in range(300):
            result = sampler.sample([churn.pid, os.getpid()])
            assert set(result) == {churn.pid, os.getpid()}
            assert result[os.getpid()].children >= 1
    finally:
        churn.kill()
        churn.wait()


def test_cpu_percent_of_a_busy_child_without_blocking():
    child = spawn("""
        import time
        print('ready', flush=True)
        end = time.time() + 30
        while time.time() < end:
            pass
    """)
    try:
        child.stdout.readline()
        sampler = ProcessTreeSampler()
        sampler.sample([child.pid])
        time.sleep(0.5)
        busy = sampler.sample([child.pid])[child.pid]
        # A busy loop uses about one core; allow a very loaded machine.
        assert 20.0 < busy.cpu_percent <= 100.0 * (psutil.cpu_count() or 1) + 10
        idle = sampler.sample([os.getpid()])[os.getpid()]
        assert idle.cpu_percent_self >= 0.0
    finally:
        stop(child)


def test_uss_is_measured_only_on_request():
    sampler = ProcessTreeSampler()
    plain = sampler.sample([os.getpid()])[os.getpid()]
    full = sampler.sample([os.getpid()], uss=True)[os.getpid()]
    assert plain.uss is None
    assert 0 < full.uss <= full.rss


DENIED = """
    import os, subprocess, sys
    if os.geteuid() == 0:  # drop root so the kernel enforces access checks
        os.setgid(65534)
        os.setuid(65534)
    # A child that made itself non-dumpable: its smaps (USS) are not ours to read.
    code = ("import ctypes, sys; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "  # PR_SET_DUMPABLE 0
            "print(1, flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stdin=subprocess.PIPE, text=True)
    child.stdout.readline()
    from jupyter_resman.core.usage import ProcessTreeSampler
    sampler = ProcessTreeSampler()
    plain = sampler.sample([os.getpid()])[os.getpid()]
    full = sampler.sample([os.getpid()], uss=True)[os.getpid()]
    gone = sampler.sample([1], uss=True)  # pid 1 belongs to root
    print(plain.children, full.children, full.uss is not None, list(gone))
    child.kill(); child.wait()
"""


def test_access_denied_is_skipped():
    done = subprocess.run([PY, "-c", textwrap.dedent(DENIED)], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    # Without USS the child is readable; with it, the child is skipped, not fatal.
    assert done.stdout.split() == ["1", "0", "True", "[]"]


# -- the system --------------------------------------------------------------------


def test_system_sample_fields_and_rates(tmp_path):
    sampler = SystemSampler(tmp_path, gpu=False)
    first = sampler.sample()
    assert first.disk_read_rate is None and first.net_sent_rate is None  # no previous call
    assert 0 < first.mem_used <= first.mem_total
    assert 0.0 <= first.mem_percent <= 100.0
    assert len(first.per_cpu) == psutil.cpu_count()
    assert 0 < first.cpu_count <= psutil.cpu_count()
    assert first.disk_total > 0 and first.disk_free <= first.disk_total
    assert sampler.sample().disk_read_rate is None  # too soon: no new reading, still none
    time.sleep(usage.IO_MIN_WINDOW_S + 0.05)
    (tmp_path / "data").write_bytes(os.urandom(1 << 20))
    second = sampler.sample()
    for rate in (second.disk_read_rate, second.disk_write_rate,
                 second.net_sent_rate, second.net_recv_rate):
        assert rate is not None and rate >= 0.0
    assert all(0.0 <= p <= 100.0 for p in second.per_cpu)
    assert 0.0 <= second.cpu_percent <= 100.0
    flat = second.to_dict()
    json.dumps(flat)
    assert flat["cpu0_percent"] == second.per_cpu[0]
    assert flat["sys_mem_total"] == second.mem_total
    third = sampler.sample()  # within IO_MIN_WINDOW_S: the same rates again, not a noisy one
    assert (third.disk_write_rate, third.net_recv_rate) == (second.disk_write_rate,
                                                            second.net_recv_rate)


def test_back_to_back_calls_repeat_the_cpu_rate(tmp_path):
    sampler = SystemSampler(gpu=False)
    sampler.sample()
    time.sleep(0.1)
    a = sampler.sample()
    b = sampler.sample()  # far less than one clock tick later: no new rate
    assert a.per_cpu == b.per_cpu and a.cpu_percent == b.cpu_percent


def test_default_sampler_without_path():
    a = system_usage()
    assert a.disk_total is None and a.disk_read_rate is None
    assert system_usage().mem_total == a.mem_total


def test_system_cpu_percent_sees_this_process_spinning():
    sampler = SystemSampler(gpu=False)
    sampler.sample()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    value = sampler.sample().cpu_percent
    # This process alone kept one of the cores busy (half of that, on a loaded machine).
    assert 100.0 / (psutil.cpu_count() or 1) * 0.5 <= value <= 100.0


def test_one_stat_read_agrees_with_psutil():
    child = spawn("print('ready', flush=True); import sys; sys.stdin.read()")
    try:
        child.stdout.readline()
        for pid in (os.getpid(), child.pid):
            raw = usage._read_proc_stat(pid)
            process = psutil.Process(pid)
            assert raw.threads == process.num_threads()
            assert abs(raw.create_time - process.create_time()) < 0.05
            times = process.cpu_times()
            assert abs(raw.cpu_total - (times.user + times.system)) < 0.1
            # RSS moves between two reads; the same source (resident pages) agrees closely.
            assert abs(raw.rss - process.memory_info().rss) < 4 << 20
    finally:
        stop(child)
    try:
        usage._read_proc_stat(child.pid)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("a reaped child's stat was read")


def test_a_new_child_is_counted_once_its_tree_is_listed_again(monkeypatch):
    sampler = ProcessTreeSampler()
    before = sampler.sample([os.getpid()])[os.getpid()].children
    child = spawn("print('ready', flush=True); import sys; sys.stdin.read()")
    try:
        child.stdout.readline()
        # Listed a moment ago: the cached list is reused, as many polling clients want...
        assert sampler.sample([os.getpid()])[os.getpid()].children == before
        # ...and a list older than DESCENDANTS_MAX_AGE_S is walked again.
        monkeypatch.setattr(usage, "DESCENDANTS_MAX_AGE_S", 0.0)
        assert sampler.sample([os.getpid()])[os.getpid()].children == before + 1
    finally:
        stop(child)
    # A child that exits is dropped at once, even from a cached list.
    monkeypatch.setattr(usage, "DESCENDANTS_MAX_AGE_S", 60.0)
    assert sampler.sample([os.getpid()])[os.getpid()].children == before


def test_psutil_path_off_linux_gives_the_same_tree(monkeypatch):
    child = spawn(TREE)
    try:
        int(child.stdout.readline())
        fast = ProcessTreeSampler().sample([child.pid])[child.pid]
        monkeypatch.setattr(usage, "_PROC_STAT", False)
        slow = ProcessTreeSampler().sample([child.pid])[child.pid]
        assert (slow.children, slow.threads) == (fast.children, fast.threads)
        assert abs(slow.rss - fast.rss) < 8 << 20
    finally:
        stop(child)
