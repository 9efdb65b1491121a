"""The notebook integration in a real IPython InteractiveShell, through ``%load_ext``.

The extension's cell hooks make the running cell the owner of what it
acquires, report a resource still held when the cell ends once, and
``%unload_ext`` releases everything.
"""

from __future__ import annotations

import warnings

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from jupyter_resman.core.errors import LeakWarning
from jupyter_resman.core.resources import FactoryProvider


@pytest.fixture
def shell(session):
    # No history database: its saving thread would outlive the test.
    sh = InteractiveShell.instance(config=Config({"HistoryManager": {"enabled": False}}))
    sh.run_line_magic("load_ext", "jupyter_resman")
    sh.user_ns["session"] = session
    yield sh
    sh.run_line_magic("unload_ext", "jupyter_resman")
    sh.run_line_magic("reset", "-f")


class Conn:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def test_a_cell_that_keeps_a_resource_is_reported_once(shell, session):
    session.resources.register_provider("db", FactoryProvider(Conn))
    first = shell.execution_count
    with pytest.warns(LeakWarning) as caught:
        result = shell.run_cell("conn = session.resources.acquire('db')")
    assert result.success
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"cell-{first}" in message and "'db'" in message
    assert session.resources.owners("db") == {f"cell-{first}": 1}

    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        assert shell.run_cell("with session.resources.use('db') as c: x = 1").success
        assert shell.run_cell("y = 2").success
    assert [w for w in later if issubclass(w.category, LeakWarning)] == []  # not again

    # A later cell can give it back by naming the resource it holds.
    assert shell.run_cell("session.resources.release('db', resource=conn)").success
    assert session.resources.owners("db") == {}


def test_everything_is_released_at_unload(shell, session):
    session.resources.register_provider("db", FactoryProvider(Conn))
    with pytest.warns(LeakWarning):
        shell.run_cell("a = session.resources.acquire('db'); b = session.resources.acquire('db')")
    held = [shell.user_ns["a"], shell.user_ns["b"]]
    shell.run_line_magic("unload_ext", "jupyter_resman")
    assert session.resources.leases() == []
    shell.run_line_magic("load_ext", "jupyter_resman")  # the fixture unloads again
    assert session.resources.metrics("db")["db"].idle == 2 and not any(c.closed for c in held)
    session.close()  # kernel shutdown: the pool disposes of them
    assert all(conn.closed for conn in held)
