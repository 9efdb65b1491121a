"""IPython magics: ``%resman …`` (the shared commands) and ``%%checkpointed``.

``%load_ext jupyter_resman`` registers them; ``%unload_ext jupyter_resman``
removes exactly what loading added. Everything that is not IPython — cell
analysis, keys, records, restore — lives in :mod:`jupyter_resman.core.cells`;
this module only runs the cell, tees its output and replays it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from . import commands
from .core import cells
from .core.errors import ResmanError, SerializationError
from .core.session import get_session
from .core.settings import format_size, parse_duration

__all__ = ["ResmanMagics", "load_ipython_extension", "unload_ipython_extension"]

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _checkpointed_parser() -> argparse.ArgumentParser:
    parser = commands._Parser(prog="%%checkpointed", description=(
        "Run the cell once; on later runs with the same source and inputs, restore what it "
        "left in the namespace and its output instead of running it."))
    parser.add_argument("name", nargs="?", help="a name for the cell (tags its cache entries)")
    parser.add_argument("--fresh", action="store_true", help="run even if a result is stored")
    parser.add_argument("--inputs", type=_names, help="the variables the result depends on "
                        "(default: every existing variable the cell reads)")
    parser.add_argument("--outputs", type=_names, help="the variables to restore "
                        "(default: what the cell binds or changes)")
    parser.add_argument("--files", nargs="+", default=[], metavar="PATH",
                        help="files or folders whose contents the result depends on")
    parser.add_argument("--ttl", type=_ttl, help="forget the stored run after this long, e.g. 1h")
    return parser


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected variable names like a,b,c, got {text!r}")
    return names


def _ttl(text: str) -> float:
    try:
        return parse_duration(text, name="--ttl")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


class _Tee:
    """A stream that writes through and records what was written."""

    def __init__(self, stream: Any, name: str, events: list[tuple]) -> None:
        self._stream, self._name, self._events = stream, name, events

    def write(self, text: str) -> int:
        if text:
            last = self._events[-1] if self._events else None
            if last is not None and last[0] == self._name:
                self._events[-1] = (self._name, last[1] + text)
            else:
                self._events.append((self._name, text))
        return self._stream.write(text)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._stream, attr)


class _Recorder:
    """Tee stdout, stderr and rich displays of a running cell, keeping them live."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.events: list[tuple] = []
        self._by_id: dict[str, int] = {}

    def __enter__(self) -> _Recorder:
        self._stdout, self._stderr = sys.stdout, sys.stderr
        sys.stdout = _Tee(sys.stdout, "stdout", self.events)
        sys.stderr = _Tee(sys.stderr, "stderr", self.events)
        pub = self.shell.display_pub
        self._own = vars(pub).get("publish")  # someone else's wrapper, to put back as it was
        self._publish = pub.publish

        def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            self._record(data, metadata, kwargs)
            return self._publish(data, metadata, *args, **kwargs)

        pub.publish = publish
        return self

    def _record(self, data: Any, metadata: Any, kwargs: dict[str, Any]) -> None:
        """Keep what a replay can show: the *final* state of every display.

        A live widget cannot be replayed, but a display that is later updated in
        place (a finished progress bar becomes static HTML) keeps its last form,
        at the position where it first appeared.
        """
        display_id = (kwargs.get("transient") or {}).get("display_id")
        replayable = _WIDGET_MIME not in data
        if kwargs.get("update"):
            index = self._by_id.get(display_id)
            if index is not None and replayable:
                self.events[index] = ("display", dict(data), dict(metadata or {}))
            return
        if display_id is not None:
            self._by_id[display_id] = len(self.events)
        if replayable:
            self.events.append(("display", dict(data), dict(metadata or {})))
        elif display_id is not None:
            self.events.append(("pending",))  # filled if the widget is replaced later

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr = self._stdout, self._stderr
        self.events[:] = [e for e in self.events if e[0] != "pending"]
        pub = self.shell.display_pub
        if self._own is not None:
            pub.publish = self._own
        else:
            del pub.publish  # back to the class's method


class _Result:
    """The cell's last value as it was displayed, when the value itself was not kept."""

    def __init__(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self._data, self._metadata = data, metadata

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple:
        return self._data, self._metadata

    def __repr__(self) -> str:
        return str(self._data.get("text/plain", ""))


@magics_class
class ResmanMagics(Magics):
    """``%resman`` and ``%%checkpointed``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._parser = commands.build_parser(prog="%resman")
        self._cell_parser = _checkpointed_parser()

    # -- %resman ------------------------------------------------------------------------------

    @line_magic("resman")
    def resman(self, line: str) -> None:
        """``%resman [COMMAND …]``: the ``resman`` commands, shown as tables.

        With no command: the dashboard (when widgets are available), else a summary.
        """
        from IPython.display import display

        if not line.strip():
            dashboard = _dashboard()
            if dashboard is not None:
                display(dashboard)
                return
        try:
            # In a notebook the command was typed on purpose: no confirmation prompt.
            output = commands.run(shlex.split(line), get_session(), commands.UI(),
                                  parser=self._parser)
        except commands.HelpRequested as help_text:
            print(str(help_text).rstrip())
            return
        except commands.UsageError as exc:
            print(f"{exc.usage}\n%resman: error: {exc}", file=sys.stderr)
            return
        except ResmanError as exc:
            print(f"%resman: {exc}", file=sys.stderr)
            return
        display(output)

    # -- %%checkpointed ------------------------------------------------------------------------

    @cell_magic("checkpointed")
    def checkpointed(self, line: str, cell: str) -> Any:
        """``%%checkpointed [NAME] [--fresh] [--inputs a,b] [--outputs x,y] [--files P…] [--ttl 1h]``

        Skip a cell whose source and inputs have not changed: what it left in
        the namespace, its printed output and displays come back instead.
        """
        try:
            args = self._cell_parser.parse_args(shlex.split(line))
        except commands.HelpRequested as help_text:
            print(str(help_text).rstrip())
            return None
        except commands.UsageError as exc:
            print(f"{exc.usage}\n%%checkpointed: error: {exc}", file=sys.stderr)
            return None
        shell = self.shell
        source = shell.transform_cell(cell)
        plan = cells.analyze(source)  # a SyntaxError is the user's to see
        ns = shell.user_ns
        hidden = set(shell.user_ns_hidden)
        session = get_session()
        try:
            key, inputs = cells.cell_key(plan, ns, inputs=args.inputs, files=args.files,
                                         hidden=hidden)
        except cells.CellInputError as exc:
            print(f"%%checkpointed: not checkpointed: {exc}", file=sys.stderr)
            return self._run(plan, source)[1]
        name = args.name or f"cell-{key[:8]}"
        cache = session.cache
        if not args.fresh:
            record = cache.get(key, namespace=cells.NAMESPACE, memory=False)
            if isinstance(record, cells.CellRecord) and cells.rng_matches(record):
                return self._replay(record, ns)
        existed = [n for n in {*plan.reads, *plan.binds, *plan.deletes} if n in ns
                   and n not in hidden]
        before = inputs if args.inputs is None else cells.snapshot(ns, plan.reads)
        rng_before = cells.rng_state()
        with _Recorder(shell) as recorder:
            start = time.perf_counter()
            has_result, result = self._run(plan, source)
            elapsed = time.perf_counter() - start
        if has_result and not self._displays(result):
            return result  # its display failed: the run counts as failed, nothing stored
        if args.outputs is not None:
            store, deleted = [n for n in args.outputs if n in ns], []
        else:
            store, deleted = cells.changed_names(plan, ns, before, existed)
        record = cells.build_record(name, ns, store, deleted, recorder.events, None, False,
                                    rng_before, cells.rng_state(), elapsed)
        if has_result:
            record.has_result = True
            record.result = self._keepable_result(result)
        self._store(cache, key, record, name, args.ttl, elapsed)
        return result

    def _run(self, plan: cells.CellPlan, source: str) -> tuple[bool, Any]:
        """Execute the cell in the user namespace; returns (has a last value, value)."""
        import ast

        shell = self.shell
        filename = shell.compile.cache(source, shell.execution_count)
        body = plan.tree.body
        last = plan.last_expression
        if last is not None:
            body = body[:-1]
        if body:
            module = ast.Module(body=body, type_ignores=[])
            exec(shell.compile(module, filename, "exec"), shell.user_global_ns, shell.user_ns)
        if last is None:
            return False, None
        expression = ast.Expression(last.value)
        value = eval(shell.compile(expression, filename, "eval"), shell.user_global_ns,
                     shell.user_ns)
        return value is not None, value

    def _displays(self, value: Any) -> bool:
        """Format the value as IPython will; False if a formatter raised."""
        shell = self.shell
        failed: list[Any] = []
        original = shell.showtraceback
        shell.showtraceback = lambda *a, **kw: failed.append(a)  # formatters report errors here
        try:
            shell.display_formatter.format(value)
        finally:
            shell.showtraceback = original
        return not failed

    def _keepable_result(self, value: Any) -> Any:
        data, metadata = self.shell.display_formatter.format(value)
        return value if _picklable(value) else _Result(data, metadata)

    def _store(self, cache: Any, key: str, record: cells.CellRecord, name: str,
               ttl: float | None, elapsed: float) -> None:
        import cloudpickle

        try:
            cache.set(key, record, namespace=cells.NAMESPACE, tags=[f"cell:{name}"], ttl=ttl,
                      compute_time=elapsed, pickler=cloudpickle)
        except SerializationError:
            culprit = _unpicklable_name(record)
            print(f"%%checkpointed: not checkpointed: {culprit} cannot be stored; the cell "
                  "ran normally. Use --outputs to choose what to keep.", file=sys.stderr)
        except ResmanError as exc:
            print(f"%%checkpointed: not checkpointed: {exc}", file=sys.stderr)

    def _replay(self, record: cells.CellRecord, ns: dict[str, Any]) -> Any:
        cells.restore(record, ns)
        pub = self.shell.display_pub
        for event in record.events:
            if event[0] == "stdout":
                sys.stdout.write(event[1])
            elif event[0] == "stderr":
                sys.stderr.write(event[1])
            else:
                pub.publish(event[1], event[2])
        sys.stdout.flush()
        names = ", ".join(record.restored_names) or "no variables"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.computed_at))
        print(f"[checkpointed {record.name}] restored {names}; computed {when}, "
              f"saved {_seconds(record.elapsed_s)}", file=sys.stderr)
        return record.result if record.has_result else None


def _picklable(value: Any) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception:  # any pickling failure means: keep the displayed form instead
        return False
    return True


def _unpicklable_name(record: cells.CellRecord) -> str:
    for name, value in record.values.items():
        if not _picklable(value):
            return f"variable `{name}` ({type(value).__module__}.{type(value).__qualname__})"
    return "the cell's result"


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 60 else f"{s / 60:.1f} min"


def _dashboard() -> Any:
    try:
        from .widgets import dashboard
    except ImportError:
        return None
    return dashboard()


class _CellHooks:
    """Per-cell bookkeeping: resources taken by a cell are owned by it, leaks reported."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def pre_run_cell(self, info: Any) -> None:
        from .core.resources import set_default_owner

        set_default_owner(f"cell-{self.shell.execution_count}")

    def post_run_cell(self, result: Any) -> None:
        from .core.resources import set_default_owner

        session = get_session()
        owner = set_default_owner(None)
        if owner is not None:
            session.resources.check_leaks(owner)
        session.flush()  # the sidebar sees this cell's cache hits now, not a cell later


_loaded: dict[int, tuple[ResmanMagics, _CellHooks]] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%resman``, ``%%checkpointed`` and the per-cell hooks (idempotent)."""
    if id(ipython) in _loaded:
        return
    magics = ResmanMagics(ipython)
    ipython.register_magics(magics)
    hooks = _CellHooks(ipython)
    ipython.events.register("pre_run_cell", hooks.pre_run_cell)
    ipython.events.register("post_run_cell", hooks.post_run_cell)
    _loaded[id(ipython)] = (magics, hooks)
    get_session().log  # kernels write the session log from the start


def unload_ipython_extension(ipython: Any) -> None:
    """Remove exactly what :func:`load_ipython_extension` added, and release resources."""
    entry = _loaded.pop(id(ipython), None)
    if entry is None:
        return
    magics, hooks = entry
    registry = ipython.magics_manager.magics
    for kind, names in magics.magics.items():
        for name in names:
            registry[kind].pop(name, None)
    ipython.magics_manager.registry.pop(type(magics).__name__, None)
    ipython.events.unregister("pre_run_cell", hooks.pre_run_cell)
    ipython.events.unregister("post_run_cell", hooks.post_run_cell)
    from .core.resources import set_default_owner

    set_default_owner(None)
    get_session().resources.release_all()
