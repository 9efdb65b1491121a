"""What ``%%checkpointed`` needs that is not IPython: cell analysis, keys, records, restore.

A cell's **key** is its source (normalised: comments and spacing do not
count) plus the fingerprints of the variables it reads that exist before it
runs — functions and classes by their source — plus the contents of any
``--files``. A **record** holds what a real run left behind, so that a hit
can leave the namespace exactly as the run did:

* every name the cell binds (assignments, loop targets, ``with … as``,
  imports, defs, classes, walrus) — or only ``--outputs``;
* every name it reads whose fingerprint changed (``model.fit(X)``,
  ``x[0] = 99``), and the base array of a changed view, rebuilt as a view
  on restore so ``x`` still aliases ``y``;
* names it deleted;
* the global ``random`` and ``numpy.random`` states when the cell used
  them (a hit then requires the same state before, like a real run would);
* its captured output events, replayed by the front end.

>>> plan = analyze("import math\\ny = f(x) + math.pi  # note\\nfor i in range(3): pass\\ny")
>>> plan.reads, plan.binds
(['f', 'x', 'range'], ['math', 'y', 'i'])
>>> analyze("y = f(x)").key_source == analyze("y=f( x )   # same").key_source
True
"""

from __future__ import annotations

import ast
import dataclasses
import os
import random
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import xxhash

from .errors import FingerprintError, ResmanError
from .fingerprints import fingerprint_bytes

__all__ = [
    "CellInputError", "CellPlan", "CellRecord", "analyze", "cell_key", "changed_names",
    "rng_state", "snapshot",
]

#: Cache namespace of checkpointed cells.
NAMESPACE = "cells"


class CellInputError(ResmanError, TypeError):
    """A variable the cell reads cannot be fingerprinted, so a hit could be wrong."""


@dataclasses.dataclass
class CellPlan:
    """The names a cell reads, binds and deletes, and its normalised source."""

    source: str
    tree: ast.Module
    reads: list[str]
    binds: list[str]
    deletes: list[str]
    key_source: str

    @property
    def last_expression(self) -> ast.Expr | None:
        body = self.tree.body
        return body[-1] if body and isinstance(body[-1], ast.Expr) else None


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def _stored_names(nodes: Iterable[ast.AST]) -> set[str]:
    """Names assigned in ``nodes`` without entering nested function/class/comprehension scopes."""
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(a.asname or a.name.split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


class _Reads(ast.NodeVisitor):
    """Global names a statement loads, skipping names local to nested scopes."""

    def __init__(self) -> None:
        self.reads: dict[str, None] = {}
        self.local: list[set[str]] = []

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and not any(node.id in s for s in self.local):
            self.reads.setdefault(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name) and not any(node.target.id in s for s in self.local):
            self.reads.setdefault(node.target.id)  # x += 1 reads x
        self.generic_visit(node)

    def _function(self, node: Any) -> None:
        # Decorators, defaults and annotations run in the enclosing scope; the body
        # only when called, with its parameters and assignments as locals.
        for expr in [*getattr(node, "decorator_list", []), *node.args.defaults,
                     *[d for d in node.args.kw_defaults if d is not None]]:
            self.visit(expr)
        args = node.args
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        body = node.body if isinstance(node.body, list) else [node.body]
        self.local.append(params | _stored_names(body))
        for stmt in body:
            self.visit(stmt)
        self.local.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]:
            self.visit(expr)
        self.local.append(_stored_names(node.body))
        for stmt in node.body:
            self.visit(stmt)
        self.local.pop()

    def _comprehension(self, node: Any) -> None:
        generators = node.generators
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        self.local.append(_stored_names(g.target for g in generators))
        for i, gen in enumerate(generators):
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                self.visit(getattr(node, part))
        self.local.pop()

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension


_UNCONDITIONAL = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Import, ast.ImportFrom,
                  ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With, ast.Expr)


def analyze(source: str) -> CellPlan:
    """Parse Python ``source`` (already free of IPython syntax) into a :class:`CellPlan`.

    A name is a *read* (an input, when it exists before the cell) unless an
    earlier top-level statement of the cell certainly assigned it — ``df =
    load(); df`` does not depend on an older ``df``.
    """
    tree = ast.parse(source)
    reads: dict[str, None] = {}
    assigned: set[str] = set()
    for stmt in tree.body:
        visitor = _Reads()
        visitor.visit(stmt)
        for name in visitor.reads:
            if name not in assigned:
                reads.setdefault(name)
        if isinstance(stmt, _UNCONDITIONAL):
            assigned |= _stored_names([stmt])
    binds = _stored_names(tree.body)
    deletes = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del)}
    ordered_binds = [n.id if isinstance(n, ast.Name) else n for n in _in_order(tree, binds)]
    return CellPlan(source=source, tree=tree, reads=list(reads),
                    binds=[b for b in ordered_binds if b not in deletes],
                    deletes=sorted(deletes), key_source=ast.dump(tree))


def _in_order(tree: ast.Module, names: set[str]) -> list[str]:
    """``names`` in the order they first appear in the source (stable, readable)."""
    positions: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name) and node.id in names:
            name = node.id
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            name = node.name
        elif isinstance(node, ast.alias):
            candidate = node.asname or node.name.split(".")[0]
            name = candidate if candidate in names else None
        if name is not None:
            pos = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
            positions[name] = min(positions.get(name, pos), pos)
    return sorted(names, key=lambda n: positions.get(n, (0, 0)))


def cell_key(plan: CellPlan, namespace: Mapping[str, Any], *, inputs: Iterable[str] | None = None,
             files: Iterable[str | os.PathLike[str]] = (), hidden: Iterable[str] = ()
             ) -> tuple[str, dict[str, bytes]]:
    """The cache key of a cell, and the fingerprints of the variables it was made from.

    ``inputs`` replaces the variables found in the source; ``hidden`` names
    (IPython's own ``In``, ``Out``, ``get_ipython``…) are never inputs.
    Raises :class:`CellInputError` naming a variable that cannot be fingerprinted.
    """
    hidden = set(hidden)
    if inputs is not None:
        names = list(dict.fromkeys(inputs))
        missing = [n for n in names if n not in namespace]
        if missing:
            raise CellInputError(f"--inputs names {', '.join(missing)}, which "
                                 f"{'does' if len(missing) == 1 else 'do'} not exist yet")
    else:
        names = [n for n in plan.reads if n in namespace and n not in hidden]
    fingerprints: dict[str, bytes] = {}
    for name in names:
        try:
            fingerprints[name] = fingerprint_bytes(namespace[name])
        except FingerprintError as exc:
            raise CellInputError(
                f"the cell reads `{name}` ({type(namespace[name]).__name__}), which cannot be "
                f"fingerprinted ({exc}); name the real inputs with --inputs a,b so a changed "
                "input can be detected") from exc
    h = xxhash.xxh3_128(plan.key_source.encode())
    for name in sorted(fingerprints):
        h.update(b"\0" + name.encode() + b"=" + fingerprints[name])
    for path in files:
        h.update(b"\0file:" + os.fspath(path).encode() + b"=" + file_digest(Path(path)))
    return h.hexdigest(), fingerprints


def file_digest(path: Path) -> bytes:
    """xxh3-128 of a file's bytes, or of a folder's files (names and contents)."""
    h = xxhash.xxh3_128()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(child.relative_to(path)).encode() + b"\0" + file_digest(child))
        return h.digest()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    except FileNotFoundError:
        return b"missing"
    return h.digest()


def snapshot(namespace: Mapping[str, Any], names: Iterable[str]) -> dict[str, bytes | None]:
    """Fingerprints of ``names`` (``None`` for one that cannot be fingerprinted)."""
    out: dict[str, bytes | None] = {}
    for name in names:
        if name in namespace:
            try:
                out[name] = fingerprint_bytes(namespace[name])
            except FingerprintError:
                out[name] = None
    return out


def changed_names(plan: CellPlan, namespace: Mapping[str, Any], before: Mapping[str, bytes | None],
                  existed: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(to_store, deleted)`` after a run: bound names, changed reads, their view bases."""
    existed = set(existed)
    store: dict[str, None] = {}
    for name in plan.binds:
        if name in namespace:
            store.setdefault(name)
    for name, fp in before.items():
        if name in namespace and name not in store:
            try:
                now = fingerprint_bytes(namespace[name])
            except FingerprintError:
                now = None
            if now is None or now != fp:
                store.setdefault(name)
    for name in list(store):
        for base_name in _view_bases(namespace, namespace[name]):
            store.setdefault(base_name)
    deleted = [n for n in existed if n not in namespace]
    return list(store), deleted


def _view_bases(namespace: Mapping[str, Any], value: Any) -> list[str]:
    """Names holding an array that the numpy view ``value`` shares memory with."""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(value, np.ndarray):
        return []
    bases = []
    base = value.base
    while isinstance(base, np.ndarray):
        bases.append(base)
        base = base.base
    return [n for n, v in namespace.items() if any(v is b for b in bases)]


# -- records -------------------------------------------------------------------------------------


@dataclasses.dataclass
class ViewSpec:
    """How to rebuild ``name`` as a view into the restored array ``base``."""

    base: str
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: Any


@dataclasses.dataclass
class CellRecord:
    """Everything a hit restores. Pickled as one object, so shared references survive."""

    name: str
    values: dict[str, Any]
    views: dict[str, ViewSpec]
    deleted: list[str]
    events: list[tuple]
    result: Any
    has_result: bool
    rng_before: bytes | None  # fingerprint of the RNG state the run started from, if it used it
    rng_after: dict[str, Any] | None
    computed_at: float
    elapsed_s: float

    @property
    def restored_names(self) -> list[str]:
        return [*self.values, *self.views]


def build_record(name: str, namespace: Mapping[str, Any], store: list[str], deleted: list[str],
                 events: list[tuple], result: Any, has_result: bool,
                 rng_before: dict[str, Any], rng_after: dict[str, Any], elapsed_s: float
                 ) -> CellRecord:
    """Collect the values to keep; numpy views of kept arrays become :class:`ViewSpec`."""
    values = {n: namespace[n] for n in store}
    views: dict[str, ViewSpec] = {}
    np = sys.modules.get("numpy")
    if np is not None:
        for n, v in list(values.items()):
            spec = _view_spec(np, v, values, n)
            if spec is not None:
                views[n] = spec
                del values[n]
    # Only generators that existed before the run count: numpy imported by the cell
    # starts from an OS-seeded state no later run could match.
    common = {k: rng_before[k] for k in rng_before if k in rng_after}
    used_rng = rng_fingerprint(common) != rng_fingerprint({k: rng_after[k] for k in common})
    return CellRecord(
        name=name, values=values, views=views, deleted=deleted, events=events, result=result,
        has_result=has_result, rng_before=rng_fingerprint(common) if used_rng else None,
        rng_after=rng_after if used_rng else None, computed_at=time.time(), elapsed_s=elapsed_s)


def _view_spec(np: Any, value: Any, values: Mapping[str, Any], own: str) -> ViewSpec | None:
    if not isinstance(value, np.ndarray) or value.base is None:
        return None
    for base_name, base in values.items():
        if base_name == own or not isinstance(base, np.ndarray) or base.base is not None:
            continue
        if not base.flags.c_contiguous or not np.shares_memory(value, base):
            continue
        offset = value.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        if 0 <= offset < max(base.nbytes, 1):
            return ViewSpec(base_name, offset, value.shape, value.strides, value.dtype)
    return None


def restore(record: CellRecord, namespace: MutableMapping[str, Any]) -> None:
    """Leave ``namespace`` as the recorded run left it (values, views, deletions, RNG)."""
    namespace.update(record.values)
    np = sys.modules.get("numpy")
    for name, spec in record.views.items():
        if np is None:  # pragma: no cover - a view implies numpy was there
            import numpy as np
        base = namespace[spec.base]
        namespace[name] = np.ndarray(spec.shape, dtype=spec.dtype, buffer=base, offset=spec.offset,
                                     strides=spec.strides)
    for name in record.deleted:
        namespace.pop(name, None)
    if record.rng_after is not None:
        set_rng_state(record.rng_after)


def rng_matches(record: CellRecord) -> bool:
    """A cell that drew random numbers only hits when it would draw the same ones."""
    if record.rng_before is None or record.rng_after is None:
        return True
    now = rng_state()
    return record.rng_before == rng_fingerprint({k: now[k] for k in record.rng_after if k in now})


# -- random number generators -----------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """The global states of ``random`` and (if imported) ``numpy.random``."""
    state: dict[str, Any] = {"random": random.getstate()}
    np = sys.modules.get("numpy")
    if np is not None:
        state["numpy"] = np.random.get_state()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["random"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def rng_fingerprint(state: Mapping[str, Any]) -> bytes:
    return fingerprint_bytes(dict(state))
