"""Registry: jupyter_resman side by side with plain SQLAlchemy Core, on SQLite and PostgreSQL.

Both sides work on the *same rows in the same database in the same run*;
rounds alternate ours / baseline so machine noise hits both alike.

* **query**: 100 k resources, half ``sample`` and half ``reagent``, attribute
  ``experiment`` in E0..E49; ``query(resource_class="sample",
  attributes={"experiment": "E7"})`` returns ~1 % (1,000 resources, as
  objects) after ``index_attribute("experiment")``. Baseline: a Core
  ``select`` of the same rows using an expression index of its own
  (``json_extract`` with a literal path on SQLite, ``->>`` on PostgreSQL),
  returning Row objects. Targets: ≤ 1.5× baseline and ≤ 20 ms.
* **hierarchy**: a root holding 100 containers of 100 resources (10,100
  descendants); ``hierarchy(root)`` (ancestors + parent → children map)
  against one recursive CTE returning the ids only. Targets: ≤ 1.5× and
  ≤ 100 ms.
* **lock**: ``acquire_lock`` + ``release_lock`` of one resource, against two
  short Core transactions on a lock table of its own (an upsert that takes an
  expired row, an update that clears it by token). Target: ≤ 1.5×. On
  PostgreSQL both are bound by the commit's fsync.
* **decrease_quantity** (no target, for scale): our full write path (row
  lock, lease check, new version, history row) against one atomic
  ``UPDATE ... SET quantity = quantity - 1 WHERE quantity >= 1``.
* **open** (no target): ``Registry(session)`` on a database whose schema is
  already current (no migration runs) against a bare engine + connect.

PostgreSQL is a throw-away pgserver instance with default settings (fsync
and synchronous commit on). Run: ``python benchmarks/bench_registry.py``
(``--quick`` for a small smoke run that does not write RESULTS.md).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import fmt_time, table, write_section  # noqa: E402

from jupyter_resman.core.registry import Asset, Consumable, Registry  # noqa: E402
from jupyter_resman.core.registry.resources import new_id  # noqa: E402
from jupyter_resman.core.session import Session  # noqa: E402

CLASSES = ("sample", "reagent")
EXPERIMENTS = 50
FANOUT = 100  # containers under the root, and resources in each


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, number: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function; rounds alternate between them."""
    for fn in fns.values():  # warm caches and prepared statements on both sides
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(_timed(lambda fn=fn: [fn() for _ in range(number)]) / number)
    return {name: statistics.median(ts) for name, ts in times.items()}


# -- baseline schema (plain Core, its own Table objects) ---------------------------------

meta = sa.MetaData()
json_type = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
b_resources = sa.Table(
    "resources", meta,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("resource_class", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("attributes", json_type),
    sa.Column("parent_id", sa.String(26)),
    sa.Column("quantity", sa.Float),
)
b_locks = sa.Table(
    "bench_locks", meta,
    sa.Column("resource_id", sa.String(26), primary_key=True),
    sa.Column("token", sa.String(64)),
    sa.Column("owner", sa.Text),
    sa.Column("expires_at", sa.Float),
)


def load(registry, rows: int) -> tuple[str, str]:
    """Bulk-load ``rows`` resources plus a 10k tree; returns (tree root id, lock target id)."""
    from jupyter_resman.core.registry.rows import to_columns
    from jupyter_resman.core.registry.schema import resources

    now = time.time()

    def row(resource, parent=None, key=None):
        values = to_columns(resource)
        values.update(id=new_id(), parent_id=parent, key=key, created_at=now, updated_at=now,
                      removed_at=None, version=1)
        return values

    flat = [row(Asset(name=f"r{i}", resource_class=CLASSES[i % 2],
                      attributes={"experiment": f"E{(i // 2) % EXPERIMENTS}", "n": i}))
            for i in range(rows)]
    root = row(Asset(name="root", resource_class="tree"))
    root["kind"] = "collection"
    level1, level2 = [], []
    for i in range(FANOUT):
        box = row(Asset(name=f"box {i}", resource_class="box"), root["id"], str(i))
        box["kind"] = "collection"
        level1.append(box)
        level2 += [row(Asset(name=f"item {i}.{j}", resource_class="item"), box["id"], str(j))
                   for j in range(FANOUT)]
    db = registry._db
    with db.transaction() as conn:
        for start in range(0, len(flat), 10_000):
            conn.execute(resources.insert(), flat[start:start + 10_000])
        conn.execute(resources.insert(), [root])
        conn.execute(resources.insert(), level1)
        conn.execute(resources.insert(), level2)
    registry.index_attribute("experiment")
    with db.transaction() as conn:
        if db.backend == "postgresql":
            conn.exec_driver_sql("CREATE INDEX ix_baseline_experiment ON resources "
                                 "(resource_class, (attributes ->> 'experiment'))")
        # The parent index the baseline's CTE needs is the registry's (parent_id, key).
        meta.create_all(conn, tables=[b_locks])
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    target = registry.add(Consumable(name="lock target", quantity=1e9))
    return root["id"], target.id


def baseline_query(engine, backend: str):
    if backend == "postgresql":
        expr = b_resources.c.attributes.op("->>")(sa.literal_column("'experiment'"))
    else:
        expr = sa.func.json_extract(b_resources.c.attributes, sa.literal_column("'$.experiment'"))
    stmt = sa.select(b_resources).where(b_resources.c.resource_class == "sample", expr == "E7")

    def run():
        with engine.connect() as conn:
            return conn.execute(stmt).all()

    return run


def baseline_tree(engine, root: str):
    r = b_resources
    tree = sa.select(r.c.id).where(r.c.parent_id == root).cte("tree", recursive=True)
    tree = tree.union_all(sa.select(r.c.id).join(tree, r.c.parent_id == tree.c.id))
    stmt = sa.select(tree.c.id)

    def run():
        with engine.connect() as conn:
            return conn.execute(stmt).scalars().all()

    return run


def baseline_lock(engine, backend: str, resource_id: str):
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if backend == "postgresql" else sqlite.insert

    def run():
        token = new_id()
        now = time.time()
        stmt = insert(b_locks).values(resource_id=resource_id, token=token, owner="bench",
                                      expires_at=now + 60)
        stmt = stmt.on_conflict_do_update(
            index_elements=[b_locks.c.resource_id],
            set_={"token": stmt.excluded.token, "owner": stmt.excluded.owner,
                  "expires_at": stmt.excluded.expires_at},
            where=sa.or_(b_locks.c.token.is_(None), b_locks.c.expires_at < now))
        with engine.begin() as conn:  # (INSERT rowcount is -1 on psycopg: ask RETURNING)
            assert conn.execute(stmt.returning(b_locks.c.resource_id)).first() is not None
        with engine.begin() as conn:
            conn.execute(b_locks.update().where(b_locks.c.token == token)
                         .values(token=None, owner=None, expires_at=None))

    return run


def baseline_decrease(engine, resource_id: str):
    stmt = (b_resources.update()
            .where(b_resources.c.id == resource_id, b_resources.c.quantity >= 1)
            .values(quantity=b_resources.c.quantity - 1))

    def run():
        with engine.begin() as conn:
            assert conn.execute(stmt).rowcount == 1

    return run


def bench_backend(backend: str, url: str | None, rows: int, repeat: int) -> list[dict]:
    home = Path(tempfile.mkdtemp(prefix="resman-bench-"))
    session = Session(home=home, registry_url=url)
    try:
        registry = session.registry
        started = time.perf_counter()
        root, target = load(registry, rows)
        print(f"[{backend}] loaded {rows + FANOUT * (FANOUT + 1) + 1:,} rows in "
              f"{time.perf_counter() - started:.1f}s", flush=True)
        engine = sa.create_engine(url or f"sqlite:///{session.home.registry_db}")
        if url is None:
            # Same durability as the registry's own connections (WAL + synchronous=NORMAL);
            # with SQLite's default FULL every baseline commit would wait for an fsync.
            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):
                dbapi_conn.execute("PRAGMA synchronous = NORMAL")
                dbapi_conn.execute("PRAGMA busy_timeout = 30000")

        out = []

        found = registry.query(resource_class="sample", attributes={"experiment": "E7"})
        base_rows = baseline_query(engine, backend)()
        assert len(found) == len(base_rows) == rows // 2 // EXPERIMENTS
        t = interleaved({
            "ours": lambda: registry.query(resource_class="sample",
                                           attributes={"experiment": "E7"}),
            "frame": lambda: registry.query(resource_class="sample",
                                            attributes={"experiment": "E7"}, as_frame=True),
            "base": baseline_query(engine, backend),
        }, repeat)
        out.append({"op": f"query {rows // 1000}k by class + attribute ({len(found):,} objects)",
                    "ours": t["ours"], "base": t["base"], "target": ("ratio+abs", 1.5, 0.020),
                    "note": f"as DataFrame: {fmt_time(t['frame'])}"})

        h = registry.hierarchy(root)
        ids = baseline_tree(engine, root)()
        assert len(h.all_descendants()) == len(ids) == FANOUT * (FANOUT + 1)
        t = interleaved({"ours": lambda: registry.hierarchy(root),
                         "base": baseline_tree(engine, root)}, repeat)
        out.append({"op": f"hierarchy of {len(ids):,} descendants", "ours": t["ours"],
                    "base": t["base"], "target": ("ratio+abs", 1.5, 0.100),
                    "note": "ours: ancestors + parent→children map; baseline: ids only"})

        def ours_lock():
            registry.release_lock(registry.acquire_lock(target, duration=60))

        number = 20 if backend == "sqlite" else 3
        t = interleaved({"ours": ours_lock, "base": baseline_lock(engine, backend, target)},
                        repeat, number)
        out.append({"op": "lock acquire + release (2 transactions)", "ours": t["ours"],
                    "base": t["base"], "target": ("ratio", 1.5, None), "note": ""})

        t = interleaved({"ours": lambda: registry.decrease_quantity(target, 1),
                         "base": baseline_decrease(engine, target)}, repeat, number)
        out.append({"op": "decrease_quantity(1)", "ours": t["ours"], "base": t["base"],
                    "target": None,
                    "note": "ours adds the lease check, a new version and a history row"})

        def open_ours():
            Registry(session).close()

        def open_base():
            fresh = sa.create_engine(url or f"sqlite:///{session.home.registry_db}")
            with fresh.connect() as conn:
                conn.exec_driver_sql("SELECT 1").all()
            fresh.dispose()

        t = interleaved({"ours": open_ours, "base": open_base}, repeat)
        out.append({"op": "open a registry whose schema is current", "ours": t["ours"],
                    "base": t["base"], "target": None,
                    "note": "ours: engine + connection set-up + one version check; "
                            "baseline: engine + connect + SELECT 1"})
        engine.dispose()
        for row in out:
            row["backend"] = backend
        return out
    finally:
        session.close()
        shutil.rmtree(home, ignore_errors=True)


def verdict(row: dict) -> tuple[str, str]:
    target = row["target"]
    if target is None:
        return "—", "(for scale)"
    kind, ratio, limit = target
    ok = row["ours"] <= ratio * row["base"]
    text = f"≤ {ratio}× baseline"
    if kind == "ratio+abs":
        ok = ok and row["ours"] <= limit
        text += f" and ≤ {fmt_time(limit)}"
    return text, "met" if ok else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k rows, few rounds, no RESULTS.md")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows, repeat = (10_000, 3) if args.quick else (args.rows, args.repeat)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import pgserver
    pg_root = Path(tempfile.mkdtemp(prefix="resman-bench-pg-"))
    server = pgserver.get_server(pg_root / "data", cleanup_mode="stop")
    try:
        server.psql("CREATE DATABASE bench;")
        pg_url = server.get_uri("bench").replace("postgresql://", "postgresql+psycopg://", 1)
        results = bench_backend("sqlite", None, rows, repeat)
        results += bench_backend("postgresql", pg_url, rows, repeat)
    finally:
        server.cleanup()
        shutil.rmtree(pg_root, ignore_errors=True)

    lines = []
    met = total = 0
    for row in results:
        target, status = verdict(row)
        if row["target"] is not None:
            total += 1
            met += status == "met"
        lines.append([row["backend"], row["op"], fmt_time(row["ours"]), fmt_time(row["base"]),
                      f"{row['ours'] / row['base']:.2f}×", target, status, row["note"]])
    body = table(["database", "operation", "jupyter_resman", "plain SQLAlchemy Core (same run)",
                  "ratio", "target", "status", "note"], lines)
    body += (f"\n\n{met} of {total} targets met. Medians of {repeat} alternating rounds; "
             "PostgreSQL 16 (pgserver) with default durability, on the same disk.\n")
    print(body)
    if not args.quick:
        write_section("registry", "Registry (benchmarks/bench_registry.py)", body,
                      ["SQLAlchemy", "alembic", "psycopg", "pgserver"])


if __name__ == "__main__":
    main()
