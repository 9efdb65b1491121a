import time

import numpy as np
import pytest

import jupyter_resman as resman
from jupyter_resman.core.cache import Cache

KEY = b"m" * 32


@pytest.fixture
def cache(tmp_path):
    c = Cache(tmp_path / "cache", secret_key=KEY)
    yield c
    c.close()


def compile_in(source: str, filename: str) -> dict:
    ns: dict = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), ns)
    return ns


def test_hits_skip_the_call_and_record_time_saved(cache):
    calls = []

    @cache.memoize(tags=["exp"])
    def slow(x, scale=1):
        calls.append(x)
        time.sleep(0.02)
        return x * scale

    assert slow(2) == 2 and slow(2) == 2
    assert slow(2, scale=3) == 6
    assert calls == [2, 2]
    stats = cache.stats()
    assert stats.hits == 1 and stats.time_saved_s >= 0.02
    assert "exp" in cache.entries()["tags"].iloc[0]


def test_array_arguments_key_by_content(cache):
    calls = []

    @cache.memoize()
    def total(a):
        calls.append(1)
        return float(a.sum())

    a = np.arange(1000.0)
    total(a)
    total(a.copy())
    total(a + 1)
    assert len(calls) == 2


def test_editing_the_function_invalidates_but_editing_its_neighbour_does_not(tmp_path, cache):
    cell_v1 = "def f(x):\n    return x + 1\n\ndef g():\n    return 'v1'\n"
    cell_v2 = "def f(x):\n    return x + 1\n\ndef g():\n    return 'v2'\n"  # only g changed
    cell_v3 = "def f(x):\n    return x + 100\n\ndef g():\n    return 'v2'\n"
    results = []
    for i, cell in enumerate((cell_v1, cell_v2, cell_v3)):
        path = tmp_path / f"cell{i}.py"
        path.write_text(cell)
        f = cache.memoize()(compile_in(cell, str(path))["f"])
        results.append(f.cache_key(1))
    assert results[0] == results[1]
    assert results[1] != results[2]


def test_none_results_are_cached(cache):
    calls = []

    @cache.memoize()
    def nothing():
        calls.append(1)

    nothing(), nothing()
    assert calls == [1]


def test_exceptions_are_not_cached(cache):
    calls = []

    @cache.memoize()
    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return x

    with pytest.raises(RuntimeError):
        flaky(1)
    assert flaky(1) == 1 and flaky(1) == 1
    assert calls == [1, 1]


def test_cache_clear_removes_only_this_function(cache):
    @cache.memoize()
    def a(x):
        return x

    @cache.memoize()
    def b(x):
        return x

    a(1), a(2), b(1)
    assert a.cache_clear() == 2
    assert len(cache) == 1


def test_ttl_applies(tmp_path):
    now = [1000.0]
    c = Cache(tmp_path / "c", secret_key=KEY, clock=lambda: now[0])
    calls = []

    @c.memoize(ttl="1min")
    def f():
        calls.append(1)
        return 1

    f(), f()
    now[0] += 61
    f()
    assert calls == [1, 1]
    c.close()


def test_resman_cached_follows_the_default_session(session, tmp_path):
    calls = []

    @resman.cached(namespace="demo")
    def square(x):
        calls.append(x)
        return x * x

    assert square(4) == 16 and square(4) == 16
    assert calls == [4]
    assert session.cache.stats().namespaces["demo"].entries == 1
    other = resman.Session(home=tmp_path / "other")
    previous = resman.set_session(other)
    try:
        square(4)
        assert calls == [4, 4]  # a different home: a miss
    finally:
        resman.set_session(previous)
        other.close()
