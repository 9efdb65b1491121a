"""Migration of legacy caches: real joblib.Memory and diskcache folders, real kills."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import diskcache
import joblib
import numpy as np
import pandas as pd
import pytest

import jupyter_resman as resman
from jupyter_resman.core.errors import MigrationError
from jupyter_resman.core.fingerprints import fingerprint
from jupyter_resman.core.migrate import Ledger, legacy_sources, migrate, plan_migration

# -- building real legacy stores ----------------------------------------------------------


def features(n):
    """A joblib-cached function: a dict holding an array (joblib pickles it with numpy)."""
    return {"n": n, "values": np.arange(n, dtype=np.float64) ** 2}


def shout(text, times=2):
    return (text.upper() + "!") * times


def make_joblib(location: Path, calls=range(5)):
    """A real joblib.Memory cache; returns {our cache key: expected value}."""
    memory = joblib.Memory(location, verbose=0)
    expected = {}
    for func, args in [(features, [(n,) for n in calls]), (shout, [("a",), ("bc", 3)])]:
        cached = memory.cache(func)
        for arg in args:
            shelved = cached.call_and_shelve(*arg)
            key = ("joblib", shelved.func_id.replace("/", "."), shelved.args_id)
            expected[key] = func(*arg)
    return expected


def make_diskcache(folder: Path, items: dict, **kw):
    with diskcache.Cache(folder) as cache:
        for key, value in items.items():
            cache.set(key, value, **kw)


DISKCACHE_ITEMS = {
    "text": "hello",
    7: [1, 2, 3],
    2.5: {"a": 1},
    b"raw": b"\x00" * 100_000,                     # stored in a file by diskcache
    ("tuple", 1): np.arange(6).reshape(2, 3),       # pickled key and value
    "big text": "x" * 50_000,                      # a text file
}


def tree_state(folder: Path) -> dict[str, tuple]:
    """Every file under ``folder`` with its size, mtime and content digest."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            info = path.stat()
            state[str(path.relative_to(folder))] = (
                info.st_size, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def same(a, b) -> bool:
    return fingerprint(a) == fingerprint(b)


def run(session, *sources, **kw):
    kw.setdefault("renderer", "silent")
    return migrate(session, sources=[str(s) for s in sources], **kw)


@pytest.fixture
def legacy(tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    return folder


# -- reading every kind back -----------------------------------------------------------------


def test_joblib_calls_read_back_through_the_cache(session, legacy):
    expected = make_joblib(legacy / "memory")
    report = run(session, legacy)
    assert report.imported == len(expected) == 7 and report.problems == 0
    for key, value in expected.items():
        assert same(session.cache.get(key, namespace="joblib"), value), key
    entries = session.cache.entries(namespace="joblib").set_index("key")
    key = next(k for k in expected if k[1].endswith(".features"))
    tags = entries.loc[[key], "tags"].iloc[0]
    assert {"migrated", "joblib", f"joblib:{key[1]}", f"key:{key[2]}"} <= set(tags)
    assert entries["compute_time_s"].ge(0).all()


def test_diskcache_entries_read_back_with_their_keys_ttl_and_tags(session, legacy):
    make_diskcache(legacy / "dc", DISKCACHE_ITEMS)
    with diskcache.Cache(legacy / "dc") as dc:
        dc.set(frozenset({1, 2}), "not a valid cache key")
        dc.set("expires later", 1, expire=3600)
        dc.set("tagged", 2, tag="exp1")
        dc.set("expired", 3, expire=0.001)
    time.sleep(0.01)  # let "expired" expire: diskcache would miss it, so do we
    report = run(session, legacy)
    assert report.imported == len(DISKCACHE_ITEMS) + 3
    for key, value in DISKCACHE_ITEMS.items():
        assert same(session.cache.get(key, namespace="diskcache"), value), key
    odd = ("diskcache", repr(frozenset({1, 2})))
    assert session.cache.get(odd, namespace="diskcache") == "not a valid cache key"
    assert session.cache.get("expired", "gone", namespace="diskcache") == "gone"
    entries = session.cache.entries(namespace="diskcache")
    by_key = dict(zip(entries["key"], entries.to_dict("records")))
    assert f"key:{frozenset({1, 2})!r}" in by_key[odd]["tags"]
    assert "diskcache-tag:exp1" in by_key["tagged"]["tags"]
    assert not pd.isna(by_key["expires later"]["expires"]) and pd.isna(by_key["text"]["expires"])


def test_arrays_and_csv_datasets(session, legacy):
    (legacy / "emb" / "tabpfn").mkdir(parents=True)
    np.save(legacy / "emb" / "tabpfn" / "adult.npy", np.eye(3))
    np.savez(legacy / "emb" / "pair.npz", x=np.arange(4), y=np.ones((2, 2)))
    np.save(legacy / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    pd.DataFrame({"age": [30, 40, 50], "class": ["a", "b", "a"]}).to_csv(
        legacy / "adult.csv", index=False)
    report = run(session, legacy)
    assert report.imported == 4 and report.problems == 0
    assert same(session.cache.get("emb/tabpfn/adult.npy", namespace="embeddings"), np.eye(3))
    pair = session.cache.get("emb/pair.npz", namespace="embeddings")
    assert set(pair) == {"x", "y"} and same(pair["y"], np.ones((2, 2)))
    assert session.cache.get("objects.npy", namespace="embeddings")[0] == {"a": 1}
    meta = session.registry.get_dataset("adult")
    assert meta.num_samples == 3 and meta.target_column == "class" and meta.num_classes == 2
    assert meta.file_path == str(legacy / "adult.csv") and "migrated" in meta.tags


def test_csv_ids_never_take_over_registered_datasets(session, legacy):
    from jupyter_resman.core.registry import DatasetMetadata

    for name in ("adult", "mine"):
        pd.DataFrame({"a": [1, 2], "y": [0, 1]}).to_csv(legacy / f"{name}.csv", index=False)
    session.registry.register_dataset(DatasetMetadata(id="adult", name="another adult",
                                                      file_path="/elsewhere/adult.csv"))
    session.registry.register_dataset(DatasetMetadata(
        id="mine", name="mine", file_path=str(legacy / "mine.csv"), description="by hand"))
    report = run(session, legacy)
    assert report.imported == 1 and report.total("skipped") == 1
    assert session.registry.get_dataset("adult").name == "another adult"
    assert session.registry.get_dataset("mine").description == "by hand"
    migrated = [m for m in session.registry.list_datasets()
                if m.file_path == str(legacy / "adult.csv")]
    assert [m.id for m in migrated] == ["legacy_adult"] and migrated[0].num_samples == 2
    assert run(session, legacy).imported == 0


def test_progress_bar_counts_every_entry(session, legacy):
    make_diskcache(legacy / "dc", DISKCACHE_ITEMS)
    snapshots = []

    class Recorder:
        def draw(self, snapshot):
            snapshots.append(snapshot)

        def close(self, snapshot):
            snapshots.append(snapshot)

    run(session, legacy, renderer=Recorder())
    final = snapshots[-1]
    assert final["status"] == "done" and final["n"] == final["total"] == len(DISKCACHE_ITEMS)


# -- dry run, idempotence, changes -------------------------------------------------------------


def test_dry_run_changes_nothing(session, legacy):
    make_joblib(legacy / "memory")
    make_diskcache(legacy / "dc", DISKCACHE_ITEMS)
    np.save(legacy / "e.npy", np.arange(3))
    pd.DataFrame({"a": [1], "y": [0]}).to_csv(legacy / "d.csv", index=False)
    before = tree_state(legacy)
    plan = plan_migration(session, [legacy])
    report = migrate(session, plan, dry_run=True, move=True)
    assert tree_state(legacy) == before  # not even a -wal/-shm file beside cache.db
    assert report.dry_run and report.imported == plan.pending == plan.entries == 15
    assert session.cache.stats().entries == 0
    assert not (session.home.root / "migrations.sqlite").exists()
    assert not session.home.registry_db.exists()  # no dataset registered, no registry made
    assert set(plan.table()["kind"]) == {"joblib", "diskcache", "arrays", "csv"}


def test_second_run_imports_nothing(session, legacy):
    expected = make_joblib(legacy / "memory")
    make_diskcache(legacy / "dc", DISKCACHE_ITEMS)
    pd.DataFrame({"a": [1], "y": [0]}).to_csv(legacy / "d.csv", index=False)
    first = run(session, legacy)
    total = len(expected) + len(DISKCACHE_ITEMS) + 1
    assert first.imported == total
    assert plan_migration(session, [legacy]).pending == 0
    second = run(session, legacy)
    assert second.imported == 0 and second.total("skipped") == total
    with Ledger(session.home.root / "migrations.sqlite") as ledger:
        rows = ledger.all()
    assert len(rows) == total and {r.run for r in rows} == {first.run_id}
    assert [m.id for m in session.registry.list_datasets()] == ["d"]


def test_changed_or_lost_entries_are_imported_again(session, legacy):
    np.save(legacy / "a.npy", np.arange(3))
    np.save(legacy / "b.npy", np.arange(4))
    run(session, legacy)
    np.save(legacy / "a.npy", np.arange(30))        # the source changed
    session.cache.delete("b.npy", namespace="embeddings")  # the copy was cleared
    report = run(session, legacy)
    assert report.imported == 2
    assert same(session.cache.get("a.npy", namespace="embeddings"), np.arange(30))
    assert same(session.cache.get("b.npy", namespace="embeddings"), np.arange(4))


def test_unreadable_entry_is_reported_and_retried(session, legacy):
    expected = make_joblib(legacy / "memory", calls=[1, 2])
    broken = next(legacy.rglob("output.pkl"))
    good = broken.read_bytes()
    broken.write_bytes(b"not a pickle")
    report = run(session, legacy, move=True)
    assert report.total("failed") == 1 and report.imported == len(expected) - 1
    assert broken.exists()  # a failed entry's source is never deleted
    assert any("cannot be read" in e for s in report.stores for e in s.errors)
    broken.write_bytes(good)
    assert run(session, legacy).imported == 1
    for key, value in expected.items():
        assert same(session.cache.get(key, namespace="joblib"), value)


def test_conflicting_keys_keep_both_sources(session, tmp_path):
    one, two, three = (tmp_path / n for n in ("one", "two", "three"))
    make_diskcache(one, {"k": 1, "shared": "same"})
    make_diskcache(two, {"k": 2, "shared": "same"})
    make_diskcache(three, {"k": 3})
    run(session, one)
    report = run(session, two, move=True)
    assert report.total("conflicts") == 1 and report.total("moved") == 1  # "shared" is identical
    assert session.cache.get("k", namespace="diskcache") == 1
    with diskcache.Cache(two) as dc:
        assert dc["k"] == 2 and "shared" not in dc
    assert "already holds a different value" in report.stores[0].errors[0]
    assert run(session, three, namespace="third").imported == 1
    assert session.cache.get("k", namespace="third") == 3


# -- move and verification -----------------------------------------------------------------------


def test_move_deletes_each_source_after_verifying_it(session, legacy):
    expected = make_joblib(legacy / "memory")
    make_diskcache(legacy / "dc", DISKCACHE_ITEMS)
    (legacy / "emb").mkdir()
    np.save(legacy / "emb" / "e.npy", np.eye(2))
    pd.DataFrame({"a": [1, 2], "y": [0, 1]}).to_csv(legacy / "d.csv", index=False)
    csv_bytes = (legacy / "d.csv").read_bytes()
    report = run(session, legacy, move=True)
    assert report.total("moved") == report.imported == len(expected) + len(DISKCACHE_ITEMS) + 2
    assert report.total("kept") == 0
    assert not list(legacy.rglob("output.pkl")) and not (legacy / "dc").exists()
    assert not (legacy / "emb").exists() and not (legacy / "d.csv").exists()
    for key, value in expected.items():
        assert same(session.cache.get(key, namespace="joblib"), value)
    meta = session.registry.get_dataset("d")
    assert Path(meta.file_path) == session.workspace("d") / "d.csv"
    assert Path(meta.file_path).read_bytes() == csv_bytes
    with Ledger(session.home.root / "migrations.sqlite") as ledger:
        assert {r.status for r in ledger.all()} == {"moved"}


LOSSY = '''
class Lossy:
    """Each unpickling counts itself: a copy is never equal to what was pickled."""

    def __init__(self, n):
        self.n, self.loads = n, 0

    def __setstate__(self, state):
        self.__dict__.update(state, loads=state["loads"] + 1)
'''


def test_failed_verification_keeps_the_source(session, legacy, tmp_path, monkeypatch):
    (tmp_path / "lossy_values.py").write_text(LOSSY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import lossy_values

    make_diskcache(legacy / "dc", {"lossy": lossy_values.Lossy(1), "fine": 2})
    pd.DataFrame({"a": [1], "y": [0]}).to_csv(legacy / "d.csv", index=False)
    report = run(session, legacy, move=True)
    assert report.total("kept") == 1 and report.total("moved") == 2
    with diskcache.Cache(legacy / "dc") as dc:
        assert dc["lossy"].n == 1 and "fine" not in dc  # only the verified one went
    assert session.cache.get("lossy", namespace="diskcache").n == 1  # imported, not verified
    assert any("verification failed" in e for e in report.stores[0].errors)
    with Ledger(session.home.root / "migrations.sqlite") as ledger:
        lossy = next(r for r in ledger.all() if r.label == "'lossy'")
    assert lossy.status == "imported" and "verification failed" in lossy.error


def test_cache_too_small_is_refused_before_importing(home, legacy):
    np.save(legacy / "big.npy", np.zeros(300_000))
    with resman.Session(home=home, max_cache_bytes="1MB") as s:
        with pytest.raises(MigrationError, match="RESMAN_MAX_CACHE"):
            run(s, legacy)
        assert s.cache.stats().entries == 0


# -- killed and resumed ------------------------------------------------------------------------

CHILD = textwrap.dedent('''
    import sys, time
    import jupyter_resman as rm
    from jupyter_resman.core.migrate import migrate

    home, source, move = sys.argv[1], sys.argv[2], sys.argv[3] == "move"

    def tick(store, entry, status):
        if status != "skipped":
            print(status, flush=True)
            time.sleep(0.002)  # a steady pace, so the kill lands mid-way

    with rm.Session(home=home) as s:
        migrate(s, sources=[source], move=move, renderer="silent", callback=tick)
    print("finished", flush=True)
''')


def migrate_then_kill(home: Path, source: Path, after: int, move: bool = False) -> int:
    """Run a migration in a child process and SIGKILL it after ``after`` entries."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(source), "move" if move else "copy"],
        stdout=subprocess.PIPE, text=True)
    seen = 0
    try:
        for line in child.stdout:
            assert line.strip() != "finished", "the migration ended before it could be killed"
            seen += 1
            if seen >= after:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return seen


def big_legacy(folder: Path) -> tuple[dict, dict]:
    expected_joblib = make_joblib(folder / "memory", calls=range(150))
    items = {f"key-{i}": np.full(50, i) for i in range(200)}
    make_diskcache(folder / "dc", items)
    return expected_joblib, items


def test_killed_migration_resumes_and_imports_everything_exactly_once(session, legacy):
    expected_joblib, items = big_legacy(legacy)
    total = len(expected_joblib) + len(items)
    first = migrate_then_kill(session.home.root, legacy, after=60)
    second = migrate_then_kill(session.home.root, legacy, after=90)
    with Ledger(session.home.root / "migrations.sqlite") as ledger:
        committed = ledger.all()
    assert first + second <= len(committed) < total
    assert len({r.run for r in committed}) == 2  # each killed run kept what it finished

    report = run(session, legacy)
    assert report.imported == total - len(committed)  # the rest, and nothing again
    assert report.total("skipped") == len(committed) and report.problems == 0
    with Ledger(session.home.root / "migrations.sqlite") as ledger:
        rows = ledger.all()
    assert len(rows) == total and {r.status for r in rows} == {"imported"}
    assert len({(r.store, r.item) for r in rows}) == total
    assert len(session.cache.keys("joblib")) == len(expected_joblib)
    assert len(session.cache.keys("diskcache")) == len(items)
    for key, value in expected_joblib.items():
        assert same(session.cache.get(key, namespace="joblib"), value)
    for key, value in items.items():
        assert same(session.cache.get(key, namespace="diskcache"), value)
    with diskcache.Cache(legacy / "dc") as dc:
        assert len(dc) == len(items)  # without --move the sources are untouched


def test_killed_move_resumes_without_losing_anything(session, legacy):
    expected_joblib, items = big_legacy(legacy)
    migrate_then_kill(session.home.root, legacy, after=100, move=True)
    report = run(session, legacy, move=True)
    assert report.problems == 0
    assert not list(legacy.rglob("output.pkl")) and not (legacy / "dc").exists()
    for key, value in expected_joblib.items():
        assert same(session.cache.get(key, namespace="joblib"), value)
    for key, value in items.items():
        assert same(session.cache.get(key, namespace="diskcache"), value)


# -- where to look, and refusals -------------------------------------------------------------


def test_legacy_locations_from_the_environment(session, tmp_path):
    a, b, clam = tmp_path / "a", tmp_path / "b", tmp_path / "clam"
    for folder in (a, b, clam):
        folder.mkdir()
    np.save(a / "x.npy", np.arange(2))
    np.save(clam / "y.npy", np.arange(3))
    env = {"RESMAN_LEGACY_DIRS": os.pathsep.join([str(a), str(b)]),
           "CLAM_CACHE_DIR": str(clam), "JOBLIB_CACHE_DIR": str(tmp_path / "missing")}
    assert [v for _, v in legacy_sources(env)] == ["RESMAN_LEGACY_DIRS", "RESMAN_LEGACY_DIRS",
                                                   "CLAM_CACHE_DIR", "JOBLIB_CACHE_DIR"]
    plan = plan_migration(session, environ=env)
    assert plan.sources == [a.resolve(), b.resolve(), clam.resolve()]
    assert "RESMAN_LEGACY_DIRS=" in plan.origin and "CLAM_CACHE_DIR=" in plan.origin
    assert any("JOBLIB_CACHE_DIR" in n and "does not exist" in n for n in plan.notes)
    assert plan.pending == 2
    with pytest.raises(MigrationError, match="pass --source"):
        plan_migration(session, environ={})


def test_bad_sources_are_refused(session, tmp_path):
    with pytest.raises(MigrationError, match="is not a folder"):
        plan_migration(session, [tmp_path / "nope"])
    with pytest.raises(MigrationError, match="inside the jupyter_resman home"):
        plan_migration(session, [session.home.root / "datasets"])


def test_home_inside_a_source_is_not_migrated(tmp_path):
    np.save(tmp_path / "outside.npy", np.arange(2))
    with resman.Session(home=tmp_path / "project" / "home") as s:
        s.cache.set("mine", 1)
        np.save(s.home.datasets_dir / "inside.npy", np.arange(2))
        plan = plan_migration(s, [tmp_path])
        assert [e.label for p in plan.stores for e in p.entries] == ["outside.npy"]


def test_one_migration_at_a_time(session, legacy):
    np.save(legacy / "x.npy", np.arange(2))
    fd = os.open(session.home.root / "migrations.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running migration would hold it
        with pytest.raises(MigrationError, match="another migration is running"):
            run(session, legacy)
    finally:
        os.close(fd)
    assert run(session, legacy).imported == 1


def test_missing_joblib_says_how_to_install_it(session, legacy):
    make_joblib(legacy / "memory", calls=[1])
    script = textwrap.dedent('''
        import sys
        sys.modules["joblib"] = None  # as if joblib were not installed
        import jupyter_resman as rm
        from jupyter_resman.core.errors import MigrationError
        from jupyter_resman.core.migrate import migrate, plan_migration
        with rm.Session(home=sys.argv[1]) as s:
            plan = plan_migration(s, [sys.argv[2]])
            print("NOTE:", plan.notes)
            try:
                migrate(s, plan, renderer="silent")
            except MigrationError as exc:
                print("ERROR:", exc)
            print("ENTRIES:", s.cache.stats().entries)
    ''')
    out = subprocess.run([sys.executable, "-c", script, str(session.home.root), str(legacy)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install joblib" in out.stdout.split("ERROR:")[1]
    assert "pip install joblib" in out.stdout.split("NOTE:")[1]
    assert "ENTRIES: 0" in out.stdout


def test_migration_is_logged(session, legacy, caplog):
    make_diskcache(legacy / "dc", {"a": 1})
    with caplog.at_level(logging.INFO, logger="jupyter_resman.migrate"):
        report = run(session, legacy, move=True)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "jupyter_resman.migrate")
    assert f"migration {report.run_id}" in text and "1 imported" in text
    assert "moved diskcache 'a'" in text and "removed the emptied diskcache folder" in text
