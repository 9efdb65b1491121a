"""The widgets in real Jupyter kernels: automatic progress widgets, live updates, fallbacks.

Each test talks to a real ``ipykernel`` over ZMQ (``jupyter_client``), the
way JupyterLab does, and reads the messages a front end would receive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from jupyter_resman.widgets._display import WIDGET_VIEW

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    home = tmp_path_factory.mktemp("kernel-home")
    env = {**os.environ, "RESMAN_HOME": str(home)}
    env.pop("RESMAN_PROGRESS", None)
    manager, client = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def execute(client, code, timeout=120):
    """Run ``code``; return the iopub messages it caused (until the kernel is idle)."""
    msg_id = client.execute(textwrap.dedent(code))
    messages = []
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        messages.append(msg)
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert not errors, "\n".join(errors[0]["traceback"])
    return messages


def of_type(messages, kind):
    return [m["content"] for m in messages if m["msg_type"] == kind]


def stdout(messages):
    return "".join(c["text"] for c in of_type(messages, "stream") if c["name"] == "stdout")


def test_track_in_a_notebook_renders_a_widget_then_static_final_output(kernel):
    messages = execute(kernel, """
        import jupyter_resman as resman, time
        for epoch in resman.track(range(3), desc="epochs", publish=False):
            for batch in resman.track(range(4), desc="batches"):
                time.sleep(0.1)
    """)
    (shown,) = of_type(messages, "display_data")
    # A live widget, with text and HTML next to it for front ends without widgets.
    assert shown["data"].keys() == {WIDGET_VIEW, "text/plain", "text/html"}
    assert shown["data"]["text/plain"].startswith("epochs:   0%")
    display_id = shown["transient"]["display_id"]
    # The background thread moved the bars while the loop ran.
    updates = [c for c in of_type(messages, "comm_msg") if c["data"].get("method") == "update"]
    assert any("value" in c["data"]["state"] for c in updates)
    # At the end the same output becomes the final state, as static output...
    (final,) = of_type(messages, "update_display_data")
    assert final["transient"]["display_id"] == display_id
    assert final["data"].keys() == {"text/plain", "text/html"}
    assert final["data"]["text/plain"].startswith("epochs: 100%")
    assert "width:100.0%" in final["data"]["text/html"]
    # ...and every widget model the bar opened is closed again.
    opened = {c["comm_id"] for c in of_type(messages, "comm_open")}
    closed = {c["comm_id"] for c in of_type(messages, "comm_close")}
    assert opened and opened == closed
    # The shared drawing thread ends once no bar is left.
    out = stdout(execute(kernel, """
        import threading, time
        deadline = time.monotonic() + 30
        while any(t.name == "resman-progress" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the progress thread did not end"
            time.sleep(0.05)
        print("no progress thread")
    """))
    assert out.strip() == "no progress thread"


def test_resman_magic_shows_a_dashboard_that_keeps_updating_while_a_cell_runs(kernel):
    shown = execute(kernel, """
        %load_ext jupyter_resman
        %resman
    """)
    (result,) = of_type(shown, "display_data")
    assert result["data"].keys() == {WIDGET_VIEW, "text/plain", "text/html"}
    assert result["data"]["text/plain"].startswith("jupyter_resman dashboard — home ")
    figure_id = None
    for content in of_type(shown, "comm_open"):
        if content["data"]["state"].get("_model_name") == "AnyModel" or \
                "_widget_data" in content["data"]["state"]:
            figure_id = content["comm_id"]  # the first figure: the monitor graphs
            break
    assert figure_id is not None
    # The cell below only sleeps: whatever reaches the front end meanwhile comes
    # from the dashboard's own thread.
    busy = execute(kernel, "import time; time.sleep(3)")
    figure_updates = [c for c in of_type(busy, "comm_msg") if c["comm_id"] == figure_id]
    assert len(figure_updates) >= 2
    out = stdout(execute(kernel, """
        import jupyter_resman as resman
        board = resman.dashboard()  # the one %resman showed: one per session
        print(board.model_id)
        board.close()
        import threading, time
        time.sleep(0.2)
        print(sorted(t.name for t in threading.enumerate() if t.name.startswith("resman")))
    """))
    model_id, threads = out.strip().splitlines()
    assert model_id == result["data"][WIDGET_VIEW]["model_id"]
    assert threads == "[]"


def test_plain_python_never_imports_widget_packages():
    code = textwrap.dedent("""
        import sys
        import jupyter_resman as resman
        for _ in resman.track(range(3), desc="plain", publish=False):
            pass
        from jupyter_resman.core.progress_render import make_renderer
        print(type(make_renderer()).__name__)
        print(sorted(m for m in sys.modules if m.split(".")[0] in
                     ("IPython", "ipywidgets", "plotly", "traitlets", "ipykernel")))
    """)
    env = {k: v for k, v in os.environ.items() if k != "RESMAN_PROGRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, check=True)
    assert out.stdout.splitlines() == ["ConsoleRenderer", "[]"]
    assert "plain: 100%" in out.stderr  # the console bar


def test_terminal_ipython_keeps_console_bars():
    code = ("from jupyter_resman.core.progress_render import make_renderer; "
            "print(type(make_renderer()).__name__)")
    env = {k: v for k, v in os.environ.items() if k != "RESMAN_PROGRESS"}
    out = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "-c", code],
                         capture_output=True, text=True, timeout=120, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "ConsoleRenderer"


def test_a_saved_notebook_renders_statically_without_widgets(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(textwrap.dedent("""
            import jupyter_resman as resman
            for step in resman.track(range(5), desc="static steps", publish=False):
                pass
        """)),
        nbformat.v4.new_code_cell(textwrap.dedent("""
            import jupyter_resman.widgets as rw
            board = rw.dashboard(start_monitor=False)
            board
        """)),
        nbformat.v4.new_code_cell("board.close()"),
    ]
    env_home = tmp_path / "home"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    old = os.environ.get("RESMAN_HOME")
    os.environ["RESMAN_HOME"] = str(env_home)  # the kernel nbclient starts inherits it
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        if old is None:
            del os.environ["RESMAN_HOME"]
        else:
            os.environ["RESMAN_HOME"] = old
    # A viewer without the widget state (GitHub, nbconvert) must show our HTML.
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "static steps" in body and "width:100.0%" in body  # the final bar
    assert "resman-dashboard-static" in body and "Kernel memory" in body
    assert "Failed to display" not in body
