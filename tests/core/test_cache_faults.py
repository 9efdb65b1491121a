"""Faults 1–15 of RELIABILITY.md for the cache, with real processes, files and signals.

Workers are forked (fast to start, and each opens its own Cache, as a kernel
would); the parent kills them, fills disks, corrupts files and then checks
what every reader must still be able to rely on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xxhash

from jupyter_resman.core.cache import Cache
from jupyter_resman.core.errors import (
    CacheFullError,
    CacheIntegrityWarning,
    CacheKeyError,
    ResmanWarning,
    SecurityWarning,
)

KEY = b"f" * 32
SIZES = (64, 5_000, 40_000, 300_000)  # inline and file-backed values


def open_cache(directory: Path, **kw) -> Cache:
    kw.setdefault("secret_key", KEY)
    kw.setdefault("memory_bytes", 0)
    return Cache(directory, **kw)


def payload(writer: int, n: int, size: int) -> dict:
    data = random.randbytes(size)
    return {"writer": writer, "n": n, "data": data, "digest": xxhash.xxh3_64_hexdigest(data)}


def check(value) -> None:
    """A value read back must be some writer's *complete* value."""
    if value is None:
        return
    assert set(value) == {"writer", "n", "data", "digest"}, value
    assert xxhash.xxh3_64_hexdigest(value["data"]) == value["digest"], "partial or mixed value"


def fork(fn, *args) -> int:
    """Run ``fn(*args)`` in a forked child; exit code 0 on success, 1 on an assertion."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            fn(*args)
        except AssertionError as exc:
            sys.stderr.write(f"worker assertion: {exc}\n")
            code = 1
        except BaseException as exc:
            sys.stderr.write(f"worker error: {type(exc).__name__}: {exc}\n")
            code = 2
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def index_rows(cache: Cache):
    with cache._db.read() as conn:
        return conn.execute("SELECT id, size, file, length(value) FROM entries").fetchall()


def assert_consistent(cache: Cache) -> None:
    """Index healthy, every row's file present, counters equal to bytes really stored."""
    with cache._db.read() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count, total = cache._totals()
    assert count == len(index_rows(cache))
    stored = 0
    for _id, size, file, inline in index_rows(cache):
        if file:
            path = cache.directory / file
            assert path.exists(), f"row points at missing {file}"
            assert path.stat().st_size == size
            stored += size
        else:
            assert inline == size
            stored += inline
    assert total == stored


def files_on_disk(cache: Cache) -> set[str]:
    root = cache.directory / "values"
    return {f"values/{p.parent.name}/{p.name}" for p in root.glob("*/*") if p.is_file()}


# -- 1, 2: crashes ---------------------------------------------------------------------------


def _write_forever(directory: Path, seed: int) -> None:
    rng = random.Random(seed)
    cache = open_cache(directory, max_bytes=3_000_000)
    n = 0
    while True:
        key = rng.randrange(5)
        if rng.random() < 0.1:
            cache.delete(key)
        else:
            cache.set(key, payload(seed, n, rng.choice(SIZES)))
        n += 1


def test_sigkill_at_random_points_never_leaves_partial_values(tmp_path):
    directory = tmp_path / "cache"
    reader = open_cache(directory, max_bytes=3_000_000)
    rng = random.Random(1)
    for round_ in range(200):
        pid = fork(_write_forever, directory, round_)
        time.sleep(rng.uniform(0.001, 0.03))
        os.kill(pid, signal.SIGKILL)
        assert wait(pid) == -signal.SIGKILL
        if round_ % 10 == 0:
            for key in range(5):
                check(reader.get(key))
    for key in range(5):
        check(reader.get(key))
    assert_consistent(reader)
    reader.sweep(grace=0)
    referenced = {row[2] for row in index_rows(reader) if row[2]}
    assert files_on_disk(reader) == referenced  # orphans of killed writers are gone
    reader.close()


def _die_before_commit(directory: Path, stage: str) -> None:
    cache = open_cache(directory)
    if stage == "after-file":
        # Value file written and renamed into place, transaction not started.
        def killed(*_args, **_kw):
            os.kill(os.getpid(), signal.SIGKILL)
        cache._commit_set = killed
    else:
        # Row upserted inside the transaction; die as COMMIT starts.
        def trace(statement: str) -> None:
            if statement == "COMMIT":
                os.kill(os.getpid(), signal.SIGKILL)
        cache._db.connection().set_trace_callback(trace)
    cache.set("k", payload(9, 1, 300_000))


@pytest.mark.parametrize("stage", ["after-file", "before-commit"])
def test_sigkill_between_value_write_and_commit(tmp_path, stage):
    directory = tmp_path / "cache"
    cache = open_cache(directory)
    cache.set("k", payload(1, 0, 300_000))
    cache.close()
    assert wait(fork(_die_before_commit, directory, stage)) == -signal.SIGKILL
    cache = open_cache(directory)
    value = cache.get("k")
    check(value)
    assert value["writer"] == 1  # the old value: the new one never committed
    assert_consistent(cache)
    assert len(files_on_disk(cache)) == 2  # the live file and the dead writer's orphan
    assert cache.sweep(grace=0) == 1
    assert len(files_on_disk(cache)) == 1
    cache.close()


# -- 3, 4: concurrency -------------------------------------------------------------------------


def _hammer(directory: Path, writer: int, ops: int) -> None:
    rng = random.Random(writer)
    cache = open_cache(directory, max_bytes=1_500_000, memory_bytes=200_000)
    for n in range(ops):
        key = f"key-{rng.randrange(10)}"
        action = rng.random()
        if action < 0.45:
            cache.set(key, payload(writer, n, rng.choice(SIZES)), tags=[f"w{writer}"])
        elif action < 0.9:
            check(cache.get(key))
        elif action < 0.97:
            cache.delete(key)
        else:
            cache.clear(tags=[f"w{rng.randrange(8)}"])
    cache.close()


def test_eight_processes_on_the_same_ten_keys(tmp_path):
    directory = tmp_path / "cache"
    open_cache(directory).close()
    pids = [fork(_hammer, directory, w, 300) for w in range(8)]
    assert [wait(p) for p in pids] == [0] * 8
    cache = open_cache(directory, max_bytes=1_500_000)
    for i in range(10):
        check(cache.get(f"key-{i}"))
    assert_consistent(cache)
    assert files_on_disk(cache) == {row[2] for row in index_rows(cache) if row[2]}
    assert cache.stats().evictions > 0  # the limit was really exercised
    assert cache.stats().bytes <= 1_500_000
    cache.close()


def _set_once_at(directory: Path, writer: int, start: float) -> None:
    cache = open_cache(directory)
    while time.time() < start:
        pass
    cache.set("contested", payload(writer, 0, 40_000))


def _read_while(directory: Path, until: float) -> None:
    cache = open_cache(directory, memory_bytes=1_000_000)
    while time.time() < until:
        check(cache.get("contested"))


def test_two_processes_set_one_key_at_once(tmp_path):
    directory = tmp_path / "cache"
    open_cache(directory).close()
    for round_ in range(15):
        start = time.time() + 0.05
        reader = fork(_read_while, directory, start + 0.1)
        writers = [fork(_set_once_at, directory, w, start) for w in (1, 2)]
        assert [wait(p) for p in (*writers, reader)] == [0, 0, 0]
        cache = open_cache(directory)
        final = cache.get("contested")
        check(final)
        assert final["writer"] in (1, 2)
        assert_consistent(cache)
        assert len(files_on_disk(cache)) == 1
        cache.close()


# -- 5: disk full ---------------------------------------------------------------------------------


def _fill_under_fsize_limit(directory: Path) -> None:
    cache = open_cache(directory)
    cache.set("old", payload(1, 0, 40_000))
    cache.set("small-old", payload(1, 1, 64))
    limit = 1_000_000
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    # A value file past the limit: EFBIG (Python ignores SIGXFSZ).
    try:
        cache.set("big", payload(1, 2, 2_000_000))
    except CacheFullError as exc:
        assert "full" in str(exc)
    else:
        raise AssertionError("no CacheFullError for a file past RLIMIT_FSIZE")
    assert not [p for p in (directory / "values").glob("*/*") if "big" in p.name or p.suffix == ".tmp"]
    # The index itself (its WAL) past the limit: SQLITE_FULL / IOERR.
    raised = False
    for n in range(400):
        try:
            cache.set(f"inline-{n}", payload(1, n, 12_000))
        except CacheFullError:
            raised = True
            break
    assert raised, "the index never hit the file-size limit"
    check(cache.get("old"))
    check(cache.get("small-old"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    cache.set("after", payload(1, 3, 2_000_000))
    check(cache.get("after"))


def test_file_size_limit_gives_cache_full_and_recovers(tmp_path):
    directory = tmp_path / "cache"
    assert wait(fork(_fill_under_fsize_limit, directory)) == 0
    cache = open_cache(directory)
    assert_consistent(cache)
    check(cache.get("old"))
    cache.close()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); the RLIMIT_FSIZE "
                    "test covers the same code path")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_tmpfs_gives_cache_full_and_recovers_when_space_is_freed(tmp_path):
    with small_tmpfs(tmp_path / "small", "3m") as mount:
        cache = open_cache(mount / "cache", max_bytes=100_000_000)
        cache.set("old", payload(1, 0, 40_000))
        filler = mount / "filler"
        filler.write_bytes(b"\0" * 1_000_000)
        with pytest.raises(CacheFullError, match="full"):
            for n in range(100):
                cache.set(f"k{n}", payload(1, n, 300_000))
        check(cache.get("old"))
        assert not list((mount / "cache" / "values").glob("*/*.tmp"))
        filler.unlink()
        cache.clear(tags=None, namespace="default", older_than=None)
        cache.set("again", payload(1, 1, 300_000))
        check(cache.get("again"))
        assert_consistent(cache)
        cache.close()


# -- 6, 7: corruption ----------------------------------------------------------------------------------


def _value_file(cache: Cache, key) -> Path:
    return next(cache.directory / f for _i, _s, f, _l in index_rows(cache) if f)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "inline"])
def test_damaged_value_is_a_miss_with_a_warning_and_is_dropped(tmp_path, damage):
    cache = open_cache(tmp_path / "cache")
    if damage == "inline":
        cache.set("k", payload(1, 0, 100))
        with cache._db.write() as conn:
            blob = bytearray(conn.execute("SELECT value FROM entries").fetchone()[0])
            blob[-3] ^= 0xFF
            conn.execute("UPDATE entries SET value = ?", (bytes(blob),))
    else:
        cache.set("k", payload(1, 0, 300_000))
        path = _value_file(cache, "k")
        if damage == "flip":
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        elif damage == "truncate":
            with open(path, "r+b") as f:
                f.truncate(1000)
        else:
            path.unlink()
    with pytest.warns((CacheIntegrityWarning, SecurityWarning)):
        assert cache.get("k") is None
    assert "k" not in cache
    assert index_rows(cache) == []
    assert cache.stats().misses == 1
    cache.close()


def test_corrupt_index_is_moved_aside_and_rebuilt(tmp_path):
    directory = tmp_path / "cache"
    cache = open_cache(directory)
    cache.set("k", 1)
    cache.close()
    index = directory / "cache.sqlite"
    with open(index, "r+b") as f:
        f.write(b"this is not a sqlite database at all" * 50)
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    with pytest.warns(CacheIntegrityWarning, match="moved to"):
        cache = open_cache(directory)
    assert cache.get("k") is None
    cache.set("k", 2)
    assert cache.get("k") == 2
    assert list(directory.glob("cache.sqlite.corrupt-*"))
    cache.close()


# -- 8: unpicklable values --------------------------------------------------------------------------


def test_memoized_unpicklable_result_is_returned_not_cached(tmp_path):
    import threading

    cache = open_cache(tmp_path / "cache")
    calls = []

    @cache.memoize()
    def make_lock(n):
        calls.append(n)
        return threading.Lock()

    with pytest.warns(ResmanWarning, match="not cached.*lock"):
        assert make_lock(1) is not None
    assert len(cache) == 0 and not files_on_disk(cache)
    with pytest.warns(ResmanWarning):
        make_lock(1)
    assert calls == [1, 1]
    cache.close()


# -- 9: awkward keys ---------------------------------------------------------------------------------


def test_awkward_keys_never_collide(tmp_path):
    cache = open_cache(tmp_path / "cache", memory_bytes=1_000_000)
    keys = [1, 1.0, True, "1", b"1", None, (1,), (1, 2), "x" * 10_000, "nul\0byte", "ünï✓",
            np.int64(7), "../escape", "/abs/path", "..\\win"]
    for i, key in enumerate(keys):
        cache.set(key, i)
    for i, key in enumerate(keys):
        if isinstance(key, np.integer):
            assert cache[int(key)] == i  # numpy scalars key like Python ones
        assert cache[key] == i
    assert len(cache) == len(keys)
    with pytest.raises(CacheKeyError):
        cache.set([1, 2], "lists are not keys")
    cache.close()


# -- 11: limits under load ----------------------------------------------------------------------------


def _flood(directory: Path, writer: int, total_bytes: int, value_size: int) -> None:
    cache = open_cache(directory, max_bytes=2_000_000)
    for n in range(total_bytes // value_size):
        cache.set(f"w{writer}-{n}", payload(writer, n, value_size))


def test_four_processes_writing_ten_times_the_limit_stay_within_it(tmp_path):
    directory = tmp_path / "cache"
    limit, value_size = 2_000_000, 100_000
    open_cache(directory, max_bytes=limit).close()
    pids = [fork(_flood, directory, w, 10 * limit // 4, value_size) for w in range(4)]
    peak, running, codes = 0, set(pids), []
    while running:
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                running.discard(pid)
                codes.append(os.waitstatus_to_exitcode(status))
        on_disk = 0
        for path in (directory / "values").glob("*/*"):
            with contextlib.suppress(FileNotFoundError):  # deleted while we were summing
                on_disk += path.stat().st_size
        peak = max(peak, on_disk)
        time.sleep(0.005)
    assert codes == [0] * 4
    cache = open_cache(directory, max_bytes=limit)
    # Each writer may have one value in flight beyond the limit, never more.
    assert peak <= limit + 4 * (value_size + 4096)
    assert cache.stats().bytes <= limit
    assert_consistent(cache)
    wal = directory / "cache.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size < 16 * 2**20
    cache.close()


# -- 13: old formats -----------------------------------------------------------------------------


def test_value_from_an_older_format_is_a_plain_miss(tmp_path):
    cache = open_cache(tmp_path / "cache")
    cache.set("k", "v")
    with cache._db.write() as conn:
        blob = bytearray(conn.execute("SELECT value FROM entries").fetchone()[0])
        blob[32 + 4] = 0  # the format version byte of the value
        conn.execute("UPDATE entries SET value = ?", (bytes(blob),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an old format is expected: no warning
        assert cache.get("k") is None
    cache.close()


def test_index_from_an_older_format_is_rebuilt(tmp_path):
    directory = tmp_path / "cache"
    cache = open_cache(directory)
    cache.set("k", 1)
    cache.close()
    conn = sqlite3.connect(directory / "cache.sqlite")
    conn.execute("PRAGMA user_version = 0")  # pretend it predates format 1
    conn.commit()
    conn.close()
    cache = open_cache(directory)
    assert cache.get("k") is None and len(cache) == 0
    cache.close()


# -- 14, 15: security ------------------------------------------------------------------------------


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_planted_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "marker"
    cache = open_cache(tmp_path / "cache")
    cache.set("inline", "ok")
    cache.set("file", payload(1, 0, 300_000))
    evil = pickle.dumps(_Exploit(marker), protocol=5)
    with cache._db.write() as conn:
        row = conn.execute("SELECT value FROM entries WHERE file IS NULL").fetchone()[0]
        # Keep our header and metadata, swap in the attacker's stream: signature cannot match.
        conn.execute("UPDATE entries SET value = ? WHERE file IS NULL",
                     (row[:32 + 76] + evil,))
    path = _value_file(cache, "file")
    path.write_bytes(evil)
    for key in ("inline", "file"):
        with pytest.warns((SecurityWarning, CacheIntegrityWarning)):
            assert cache.get(key) is None
    assert not marker.exists()
    cache.close()


def test_symlinks_are_never_followed_out_of_the_home(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("do not read")
    cache = open_cache(tmp_path / "cache")
    cache.set("k", payload(1, 0, 300_000))
    path = _value_file(cache, "k")
    path.unlink()
    path.symlink_to(secret)
    with pytest.warns(SecurityWarning, match="cannot be read safely"):
        assert cache.get("k") is None
    assert secret.read_text() == "do not read"
    cache.close()


def test_a_shard_folder_replaced_by_a_link_is_restored(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    open_cache(tmp_path / "cache").close()
    shard = tmp_path / "cache" / "values" / "00"
    shard.rmdir()
    shard.symlink_to(outside)
    with pytest.warns(SecurityWarning, match="planted"):
        cache = open_cache(tmp_path / "cache")
    assert shard.is_dir() and not shard.is_symlink()
    for i in range(300):
        cache.set(f"k{i}", payload(1, i, 40_000))
    assert list(outside.iterdir()) == []
    cache.close()


def test_hostile_keys_and_namespaces_create_nothing_outside(tmp_path):
    home = tmp_path / "cache"
    cache = open_cache(home)
    before = set(tmp_path.iterdir())
    for key in ("../x", "/abs", "..\\x", "a\0b", "../../etc/passwd"):
        cache.set(key, payload(1, 0, 40_000))
        check(cache.get(key))
    for ns in ("../x", "/abs", "..\\x", "a\0b", ".."):
        with pytest.raises(CacheKeyError, match="namespace"):
            cache.set("k", 1, namespace=ns)
    assert set(tmp_path.iterdir()) == before
    for path in home.rglob("*"):
        assert path.resolve().is_relative_to(home.resolve())
    cache.close()


def test_errno_of_full_disk_is_recognised():
    from jupyter_resman.core.db import is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "no space"))
    assert is_disk_full(OSError(errno.EFBIG, "too big"))
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
