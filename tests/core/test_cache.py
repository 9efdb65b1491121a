"""Behaviour of the two-tier cache in one process (faults with real processes: test_cache_faults)."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from jupyter_resman.core.cache import Cache
from jupyter_resman.core.errors import CacheKeyError, SerializationError, ValueTooLargeError

KEY = b"s" * 32


class Clock:
    """An injectable wall clock that tests move by hand."""

    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(tmp_path, clock):
    c = Cache(tmp_path / "cache", secret_key=KEY, max_bytes=10_000_000, memory_bytes=1_000_000,
              clock=clock)
    yield c
    c.close()


def make(tmp_path, **kw):
    kw.setdefault("secret_key", KEY)
    return Cache(tmp_path / "cache", **kw)


def disk_bytes(cache):
    """Bytes of values as actually stored: inline blobs plus value files."""
    with cache._db.read() as conn:
        inline = conn.execute("SELECT COALESCE(SUM(length(value)), 0) FROM entries").fetchone()[0]
    files = sum(p.stat().st_size for p in (cache.directory / "values").glob("*/*.val"))
    return inline + files


def test_dict_protocol(cache):
    cache["a"] = 1
    cache[("t", 2)] = [1, 2]
    assert cache["a"] == 1 and cache[("t", 2)] == [1, 2]
    assert "a" in cache and "zz" not in cache
    assert len(cache) == 2
    assert sorted(map(str, cache)) == sorted(["a", str(("t", 2))])
    del cache["a"]
    assert "a" not in cache
    with pytest.raises(CacheKeyError, match="'a' is not in the cache"):
        cache["a"]
    with pytest.raises(KeyError):
        del cache["a"]
    assert cache.pop(("t", 2)) == [1, 2]
    assert cache.pop("gone", "fallback") == "fallback"
    assert cache.get("gone") is None and cache.get("gone", default=7) == 7


def test_none_and_falsy_values_are_hits(cache):
    cache.set("none", None)
    cache.set("zero", 0)
    assert cache.get("none", default="miss") is None
    assert cache.get("zero", default="miss") == 0
    assert cache.stats().hits == 2


def test_namespaces_are_separate(cache):
    cache.set("k", "default")
    cache.set("k", "emb", namespace="embeddings")
    assert cache.get("k") == "default"
    assert cache.get("k", namespace="embeddings") == "emb"
    assert cache.clear(namespace="embeddings") == 1
    assert cache.get("k") == "default"
    assert cache.namespaces() == ["default"]


def test_clear_by_tags_age_and_all(cache, clock):
    cache.set("a", 1, tags=["exp1", "raw"])
    cache.set("b", 2, tags=["exp2"])
    clock.now += 10 * 86400
    cache.set("c", 3, tags=["exp1"])
    assert cache.clear(tags=["exp2"]) == 1
    assert cache.clear(older_than="7d") == 1  # "a"
    assert cache.get("c") == 3
    cache.set("d", 4)
    assert cache.clear(tags="exp1", namespace="default") == 1
    assert cache.clear() == 1
    assert len(cache) == 0


def test_ttl_expires_and_backward_clock_never_makes_immortal(cache, clock):
    cache.set("short", "v", ttl=60)
    cache.set("hour", "v", ttl="1h")
    assert cache.get("short") == "v"  # now also in the memory tier
    clock.now += 61
    assert cache.get("short") is None
    assert cache.get("hour") == "v"
    clock.now -= 100_000  # clock jumps back before the entries were written
    assert cache.get("hour") is None
    clock.now += 100_000 + 10
    cache.set("fresh", 1, ttl=30)
    clock.now += 31
    assert "fresh" not in cache
    assert cache.stats().misses >= 2


def test_disk_hit_is_promoted_to_memory_and_stats_count_tiers(cache):
    cache.set("x", {"big": "value"})
    assert cache.get("x") == {"big": "value"}  # disk hit, promoted
    assert cache.get("x") == {"big": "value"}  # memory hit
    cache.get("missing")
    stats = cache.stats()
    assert (stats.disk.hits, stats.memory.hits, stats.hits, stats.misses) == (1, 1, 2, 1)
    assert stats.hit_rate == pytest.approx(2 / 3)
    assert stats.memory.entries == 1
    assert stats.entries == 1 and stats.bytes > 0


def test_memory_false_gives_a_fresh_copy(cache):
    cache.set("arr", np.arange(5))
    held = cache.get("arr")
    held[0] = 99  # the memory tier's object: changing it changes what memory hits return
    fresh = cache.get("arr", memory=False)
    assert fresh[0] == 0


def test_memory_tier_is_byte_limited(tmp_path):
    c = make(tmp_path, memory_bytes=50_000)
    try:
        for i in range(10):
            c.set(i, np.zeros(2_000))  # ~16 KB each on disk
            c.get(i)
        assert c._mem.bytes <= 50_000
        assert len(c._mem) < 10
        assert all(c.get(i) is not None for i in range(10))  # disk still has everything
    finally:
        c.close()


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
def test_disk_limit_enforced_by_policy(tmp_path, policy):
    clock = Clock()
    c = make(tmp_path, max_bytes=200_000, memory_bytes=0, policy=policy, clock=clock)
    try:
        value = np.zeros(5_000)  # ~40 KB
        for i in range(4):
            clock.now += 1
            c.set(i, value)
        clock.now += 1
        for _ in range(3):
            c.get(0)  # 0 is recently used and frequently used, but the oldest write
        c.flush()
        clock.now += 1
        c.set(4, value)
        clock.now += 1
        c.set(5, value)  # over the limit: something must go
        present = {i for i in range(6) if i in c}
        assert disk_bytes(c) <= 200_000
        if policy == "fifo":
            assert 0 not in present
        else:
            assert 0 in present and 1 not in present
        stats = c.stats()
        assert stats.evictions >= 1 and stats.evicted_bytes > 0
        assert stats.bytes == disk_bytes(c) <= 200_000
    finally:
        c.close()


def test_value_larger_than_limit_evicts_nothing(tmp_path):
    c = make(tmp_path, max_bytes=100_000)
    try:
        c.set("keep", np.zeros(1000))
        with pytest.raises(ValueTooLargeError, match="RESMAN_MAX_CACHE"):
            c.set("huge", np.zeros(100_000))
        assert "keep" in c and "huge" not in c
        assert c.stats().evictions == 0
        assert not list((c.directory / "values").glob("*/*.tmp"))
    finally:
        c.close()


def test_unpicklable_value_writes_nothing(cache):
    import threading

    with pytest.raises(SerializationError, match="lock"):
        cache.set("bad", threading.Lock())
    assert len(cache) == 0
    assert not list((cache.directory / "values").glob("*/*"))


def test_large_values_live_in_files_and_round_trip(cache):
    arr = np.random.default_rng(0).normal(size=(300, 200))
    df = pd.DataFrame({"a": np.arange(50_000), "b": np.linspace(0, 1, 50_000),
                       "s": [f"r{i}" for i in range(50_000)]})
    cache.set("arr", arr)
    cache.set("df", df, namespace="frames")
    assert len(list((cache.directory / "values").glob("*/*.val"))) == 2
    got = cache.get("arr", memory=False)
    assert got.dtype == arr.dtype and np.array_equal(got, arr)
    pd.testing.assert_frame_equal(cache.get("df", namespace="frames"), df)
    entries = cache.entries()
    assert set(entries["stored"]) == {"file"}


def test_replacing_a_file_value_removes_the_old_file(cache):
    cache.set("k", np.zeros(10_000))
    cache.set("k", np.ones(10_000))
    cache.set("k", "small now")
    assert not list((cache.directory / "values").glob("*/*"))
    assert cache.get("k") == "small now"
    assert cache.stats().bytes == disk_bytes(cache)


def test_entries_frame(cache, clock):
    cache.set("a", 1, tags=["t1", "t2"], ttl=60, compute_time=2.5)
    cache.get("a")
    frame = cache.entries()
    assert list(frame.columns) == ["key", "namespace", "tags", "bytes", "created", "last_access",
                                   "hits", "expires", "compute_time_s", "stored", "in_memory"]
    row = frame.iloc[0]
    assert row["key"] == "a" and row["tags"] == ["t1", "t2"] and row["hits"] == 1
    assert row["compute_time_s"] == 2.5 and bool(row["in_memory"])
    assert (row["expires"] - row["created"]).total_seconds() == 60


def test_time_saved_counts_compute_time_of_hits(cache):
    cache.set("slow", 1, compute_time=3.0)
    cache.get("slow")
    cache.get("slow")
    assert cache.stats().time_saved_s == pytest.approx(6.0)


def test_history_is_persisted_and_readable_by_another_process(cache, tmp_path):
    cache.set("a", 1, namespace="ns1")
    cache.get("a", namespace="ns1")
    cache.get("b", namespace="ns1")
    cache.flush()
    history = cache.history()
    assert list(history.columns) == ["time", "namespace", "hits", "misses", "sets", "evictions",
                                     "time_saved_s"]
    assert history["hits"].sum() == 1 and history["misses"].sum() == 1
    code = textwrap.dedent(f"""
        from pathlib import Path
        from jupyter_resman.core.cache import Cache
        c = Cache(Path({str(cache.directory)!r}), secret_key={KEY!r})
        s = c.stats()
        print(s.hits, s.misses, s.namespaces["ns1"].entries, int(c.history()["hits"].sum()))
        c.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "1", "1"]


def test_disabled_cache_stores_nothing(tmp_path):
    c = make(tmp_path, enabled=False)
    try:
        c.set("a", 1)
        assert c.get("a") is None and len(c) == 0
        calls = []

        @c.memoize()
        def f(x):
            calls.append(x)
            return x

        f(1), f(1)
        assert calls == [1, 1]
    finally:
        c.close()


def test_other_process_writes_and_clears_are_seen(cache, tmp_path):
    cache.set("shared", "v1")
    assert cache.get("shared") == "v1"  # now held in this process's memory tier
    other = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from jupyter_resman.core.cache import Cache
        c = Cache(Path({str(cache.directory)!r}), secret_key={KEY!r})
        if sys.argv[1] == "set":
            c.set("shared", "v2")
        else:
            c.clear()
        c.close()
    """)
    subprocess.run([sys.executable, "-c", other, "set"], check=True)
    assert cache.get("shared") == "v2"
    subprocess.run([sys.executable, "-c", other, "clear"], check=True)
    assert cache.get("shared") is None


def test_memory_copies_survive_unrelated_foreign_writes(cache):
    cache.set("mine", [1, 2, 3])
    held = cache.get("mine")
    other = textwrap.dedent(f"""
        from pathlib import Path
        from jupyter_resman.core.cache import Cache
        c = Cache(Path({str(cache.directory)!r}), secret_key={KEY!r})
        c.set("theirs", 1)
        c.close()
    """)
    subprocess.run([sys.executable, "-c", other], check=True)
    assert cache.get("mine") is held  # revalidated by stamp, still the memory copy


def test_sweep_removes_orphans_but_keeps_live_files(cache):
    cache.set("live", np.zeros(10_000))
    shard = next(p for p in (cache.directory / "values").iterdir() if p.is_dir())
    (shard / "0000000000000000-0000000000000001.val").write_bytes(b"orphan")
    (shard / "abc.tmp").write_bytes(b"partial")
    assert cache.sweep(grace=0) == 2
    assert np.array_equal(cache.get("live", memory=False), np.zeros(10_000))


def test_cache_never_draws_from_the_global_random_generators(cache):
    import random

    random.seed(3)
    np.random.seed(3)
    expected = (random.random(), np.random.random())
    random.seed(3)
    np.random.seed(3)
    cache.set("a", np.arange(10_000))
    cache.set("b", 1)
    cache.get("a"), cache.get("b")
    cache.clear()
    assert (random.random(), np.random.random()) == expected


def test_arrays_in_small_inline_values_come_back_writable(cache):
    cache.set("small", {"arr": np.arange(4)})
    got = cache.get("small", memory=False)["arr"]
    got[0] = 9  # a read-only view of the stored bytes would raise here
    assert got[0] == 9
