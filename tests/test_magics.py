"""The magics in a real IPython InteractiveShell (run_cell, not mocks)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

import jupyter_resman as resman

#: Cells append here (through `import tests.test_magics as probe`) to show that they ran;
#: a module's fingerprint is its name, so this is not an input of the cell.
RUNS: list[str] = []


def new_shell():
    from traitlets.config import Config

    # No history database: its saving thread would outlive every test.
    return InteractiveShell.instance(config=Config({"HistoryManager": {"enabled": False}}))


class RecordingPublisher(DisplayPublisher):
    """Collects rich displays like a notebook front end would receive them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.displays = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.displays.append(data)


@pytest.fixture
def shell(session):
    sh = new_shell()
    sh.run_line_magic("reset", "-f")
    RUNS.clear()
    publisher = RecordingPublisher(shell=sh)
    original = sh.display_pub
    sh.display_pub = publisher
    sh.run_line_magic("load_ext", "jupyter_resman")
    yield sh
    sh.run_line_magic("unload_ext", "jupyter_resman")
    sh.display_pub = original
    sh.run_line_magic("reset", "-f")


def run(sh, code):
    result = sh.run_cell(code)
    return result


SLOW_CELL = """%%checkpointed slow
import tests.test_magics as probe
probe.RUNS.append("slow")
total = sum(data) * factor
print("total is", total)
total
"""


def test_second_run_restores_instead_of_running(shell, capsys):
    shell.user_ns.update(data=[1, 2, 3], factor=2)
    first = run(shell, SLOW_CELL)
    assert first.result == 12 and RUNS == ["slow"]
    capsys.readouterr()
    shell.user_ns["total"] = None
    second = run(shell, SLOW_CELL)
    out = capsys.readouterr()
    assert second.result == 12
    assert shell.user_ns["total"] == 12
    assert RUNS == ["slow"]  # the cell did not run again...
    assert "total is 12" in out.out  # ...but its output came back
    assert "[checkpointed slow] restored" in out.err and "saved" in out.err


def test_restore_after_reset(shell):
    shell.user_ns.update(data=[1, 2, 3], factor=2)
    run(shell, SLOW_CELL)
    shell.run_line_magic("reset", "-f")
    shell.user_ns.update(data=[1, 2, 3], factor=2)
    run(shell, SLOW_CELL)
    assert shell.user_ns["total"] == 12 and RUNS == ["slow"]


def test_changed_input_variable_invalidates(shell):
    shell.user_ns.update(data=[1, 2, 3], factor=2)
    run(shell, SLOW_CELL)
    shell.user_ns["factor"] = 3
    run(shell, SLOW_CELL)
    assert shell.user_ns["total"] == 18 and RUNS == ["slow", "slow"]


def test_edited_helper_function_invalidates(shell):
    run(shell, "def helper(v):\n    return v + 1\n")
    cell = "%%checkpointed\nimport tests.test_magics as probe\nprobe.RUNS.append(1)\nout = helper(1)"
    run(shell, cell)
    run(shell, cell)
    assert shell.user_ns["out"] == 2 and RUNS == [1]
    run(shell, "def helper(v):\n    return v + 100\n")
    run(shell, cell)
    assert shell.user_ns["out"] == 101 and RUNS == [1, 1]


def test_changed_file_invalidates(shell, tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("a,b\n1,2\n")
    shell.user_ns["path"] = str(path)
    cell = (f"%%checkpointed --files {path}\nimport tests.test_magics as probe\n"
            "probe.RUNS.append(1)\ncontent = open(path).read()")
    run(shell, cell)
    run(shell, cell)
    assert RUNS == [1]
    path.write_text("a,b\n3,4\n")
    run(shell, cell)
    assert shell.user_ns["content"] == "a,b\n3,4\n" and RUNS == [1, 1]


def test_rich_outputs_are_replayed(shell):
    cell = ("%%checkpointed display\nfrom IPython.display import display, HTML\n"
            "display(HTML('<b>chart</b>'))\nvalue = 5")
    run(shell, cell)
    first = list(shell.display_pub.displays)
    shell.display_pub.displays.clear()
    run(shell, cell)
    assert first and shell.display_pub.displays == first
    assert shell.display_pub.displays[0]["text/html"] == "<b>chart</b>"


def test_exceptions_are_not_cached(shell):
    cell = ("%%checkpointed flaky\nimport tests.test_magics as probe\nprobe.RUNS.append(1)\n"
            "if len(probe.RUNS) == 1:\n    raise RuntimeError('boom')\nok = True")
    failed = run(shell, cell)
    assert isinstance(failed.error_in_exec, RuntimeError)
    run(shell, cell)
    run(shell, cell)
    assert RUNS == [1, 1] and shell.user_ns["ok"] is True


def test_interrupted_cell_is_not_cached(shell):
    cell = ("%%checkpointed\nimport tests.test_magics as probe\nprobe.RUNS.append(1)\n"
            "if len(probe.RUNS) == 1:\n    raise KeyboardInterrupt\ndone = 1")
    first = run(shell, cell)
    assert isinstance(first.error_in_exec, KeyboardInterrupt)
    run(shell, cell)
    run(shell, cell)
    assert RUNS == [1, 1] and shell.user_ns["done"] == 1


def test_in_place_changes_and_views_are_restored(shell):
    run(shell, "import numpy as np\nbase = np.arange(6)\nview = base[2:5]\nlog = []")
    cell = "%%checkpointed\nview[0] = 99\nlog.append('ran')"
    run(shell, cell)
    expected = shell.user_ns["base"].copy()
    run(shell, "import numpy as np\nbase = np.arange(6)\nview = base[2:5]\nlog = []")
    run(shell, cell)
    ns = shell.user_ns
    assert ns["log"] == ["ran"]  # restored, not re-run (log was fresh, now as after the run)
    assert np.array_equal(ns["base"], expected)
    ns["view"][1] = -1  # still a view of base, and writable
    assert ns["base"][3] == -1


def test_random_state_is_restored_and_required(shell):
    run(shell, "import random\nrandom.seed(7)")
    cell = "%%checkpointed\ndraw = random.random()"
    run(shell, cell)
    first, after_first = shell.user_ns["draw"], random.random()
    run(shell, "random.seed(7)")
    shell.user_ns["draw"] = None
    run(shell, cell)  # same state before: a hit, and the state after is as a real run's
    assert shell.user_ns["draw"] == first and random.random() == after_first
    run(shell, "random.seed(8)")
    run(shell, cell)  # another state: a real run draws another number
    random.seed(8)
    assert shell.user_ns["draw"] == random.random()


def test_imports_functions_and_classes_are_restored(shell):
    cell = ("%%checkpointed defs\nimport math\ndef area(r):\n    return math.pi * r * r\n"
            "class Box:\n    def __init__(self, w):\n        self.w = w\nb = Box(area(1))")
    run(shell, cell)
    shell.run_line_magic("reset", "-f")
    run(shell, cell)
    ns = shell.user_ns
    assert ns["area"](2) == pytest.approx(4 * np.pi)
    assert ns["b"].w == pytest.approx(np.pi) and type(ns["b"]).__name__ == "Box"


def test_unstorable_variable_is_named_and_result_still_shown(shell, capsys):
    result = run(shell, "%%checkpointed\nimport threading\nlock = threading.Lock()\n42")
    assert result.result == 42
    err = capsys.readouterr().err
    assert "not checkpointed" in err and "`lock`" in err and "_thread.lock" in err
    assert resman.get_session().cache.keys("cells") == []  # nothing half-written


def test_outputs_and_inputs_options(shell):
    shell.user_ns.update(a=1, b=2, noise=object())
    cell = "%%checkpointed --inputs a --outputs c\nc = a * 10\nd = noise"
    run(shell, cell)
    shell.run_line_magic("reset", "-f")
    shell.user_ns.update(a=1, b=5, noise=object())
    run(shell, cell)
    assert shell.user_ns["c"] == 10 and "d" not in shell.user_ns


def test_fresh_reruns(shell):
    shell.user_ns["n"] = [0]
    cell = "%%checkpointed --fresh\nn[0] += 1"
    run(shell, cell)
    run(shell, cell)
    assert shell.user_ns["n"] == [2]


def test_bad_arguments_show_usage(shell, capsys):
    run(shell, "%%checkpointed --ttl forever\nx = 1")
    err = capsys.readouterr().err
    assert "usage: %%checkpointed" in err and "Traceback" not in err


def test_resman_line_magic_text_in_a_terminal(shell, capsys):
    resman.get_session().cache.set("k", 1)
    shell.display_pub = DisplayPublisher(shell=shell)  # a terminal shows text/plain
    shell.run_line_magic("resman", "cache stats")
    out = capsys.readouterr().out
    assert "entries        1" in out


def test_resman_line_magic_html_in_a_notebook(shell):
    from IPython.core.formatters import DisplayFormatter

    resman.get_session().cache.set("k", 1)
    from jupyter_resman.commands import run as run_command

    output = run_command(["cache", "list"], resman.get_session())
    data, _ = DisplayFormatter().format(output)
    assert "<table" in data["text/html"] and "k" in data["text/plain"]


def test_resman_bad_arguments_show_usage_without_traceback(shell, capsys):
    shell.run_line_magic("resman", "cache clear --bogus")
    err = capsys.readouterr().err
    assert "usage: %resman cache clear" in err and "Traceback" not in err


def test_load_unload_round_trip(session):
    sh = new_shell()
    before = {kind: set(names) for kind, names in sh.magics_manager.magics.items()}
    sh.run_line_magic("load_ext", "jupyter_resman")
    assert "resman" in sh.magics_manager.magics["line"]
    assert "checkpointed" in sh.magics_manager.magics["cell"]
    sh.run_line_magic("unload_ext", "jupyter_resman")
    after = {kind: set(names) for kind, names in sh.magics_manager.magics.items()}
    assert after == before


def test_result_that_fails_to_display_is_not_stored(shell):
    run(shell, "class Broken:\n    def _repr_html_(self):\n        raise ValueError('no html')\n")
    cell = "%%checkpointed\nimport tests.test_magics as probe\nprobe.RUNS.append(1)\nBroken()"
    run(shell, cell)
    run(shell, cell)
    assert RUNS == [1, 1]
    assert resman.get_session().cache.keys("cells") == []


def test_cache_counts_are_visible_to_other_processes_after_each_cell(shell, session):
    import subprocess
    import sys
    import textwrap

    session.cache.set("k", 1)
    run(shell, "import jupyter_resman as resman\nresman.get_session().cache.get('k')")
    code = textwrap.dedent(f"""
        import jupyter_resman as resman
        s = resman.Session(home={str(session.home.root)!r})
        print(s.cache.stats().hits)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_displays_updated_in_place_replay_their_final_form(shell):
    cell = ("%%checkpointed\nfrom IPython.display import display, HTML\n"
            "h = display(HTML('<i>working</i>'), display_id=True)\n"
            "h.update(HTML('<b>done</b>'))\nfinished = True")
    run(shell, cell)
    shell.display_pub.displays.clear()
    run(shell, cell)
    assert [d["text/html"] for d in shell.display_pub.displays] == ["<b>done</b>"]
