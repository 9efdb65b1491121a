"""The dashboard tutorial in a real JupyterLab and Notebook 7, driven by a headless Chromium.

Each test opens ``notebooks/05-dashboard.ipynb`` as a user would, clears its
stored outputs and runs all cells. Through the page only, it checks that the
dashboard's memory graph (a plotly ``FigureWidget``) gains data points whose
values change while the long cell runs, that the progress bars move and
reach 100 % (the live bars on the dashboard's Progress tab and the bar under
the cell, which ends as static HTML), and that the page raised no errors. A
screenshot of the dashboard is kept as ``test-artifacts/dashboard.png``
(``dashboard-notebook7.png`` for Notebook 7, which serves the same server and
widget manager under ``/notebooks/``).

The ``lab``, ``page`` and ``artifacts`` fixtures (a real ``jupyter lab`` and
Chromium under Playwright) come from ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05-dashboard.ipynb"

#: The series of the live memory graph, read from plotly's own figure data.
MEMORY_POINTS = """() => {
    const gd = document.querySelector('.resman-monitor-panel .js-plotly-plot');
    const trace = gd && gd.data && gd.data.find(t => t.name === 'kernel memory');
    return trace ? Array.from(trace.y || []) : null;
}"""


def _wait(predicate, what: str, timeout: float = 60.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _kernel_idle(lab, path: str) -> bool:
    for session in lab.api("api/sessions"):
        kernel = session.get("kernel") or {}
        if session.get("path") == path and kernel.get("execution_state") == "idle":
            return True
    return False


def test_dashboard_tutorial_runs_live_in_jupyterlab(lab, page, artifacts):
    _run_dashboard(lab, page, f"lab/tree/{NOTEBOOK.name}", artifacts / "dashboard.png")


def test_dashboard_tutorial_runs_live_in_notebook7(lab, page, artifacts):
    copy = "nb7-" + NOTEBOOK.name  # its own kernel and session, apart from the lab test's
    _run_dashboard(lab, page, f"notebooks/{copy}", artifacts / "dashboard-notebook7.png",
                   path=copy, own_errors=_raised_by_notebook7)


def _raised_by_notebook7(stack: str) -> bool:
    """Whether an error was thrown by Notebook 7's own code (its top frame is in its bundle).

    Notebook 7.6 throws one on every page load here, with no extension but its own
    enabled ("reading 'schema'" while loading settings), and sometimes another about
    a file-browser command it does not register; errors from widgets or from our
    extension have their top frame in those bundles instead.
    """
    frames = [line for line in stack.splitlines() if "http" in line]
    return bool(frames) and "/static/notebook/" in frames[0]


def _run_dashboard(lab, page, route: str, screenshot: Path, path: str = NOTEBOOK.name,
                   own_errors=lambda stack: False) -> None:
    shutil.copy(NOTEBOOK, lab.root / path)
    page.goto(f"{lab.url}{route}?token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    _wait(lambda: _kernel_idle(lab, path), "the notebook's kernel")

    # Start from a clean page: the stored outputs are static snapshots of an earlier run.
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_selector(".resman-dashboard-static", state="detached", timeout=10_000)
    # Not awaited: the command's promise resolves only once every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # The live dashboard appears, and its memory graph has data.
    page.wait_for_selector(".resman-dashboard .resman-monitor-panel .js-plotly-plot",
                           timeout=90_000)
    first = _wait(lambda: page.evaluate(MEMORY_POINTS), "points on the memory graph")

    # While the long cell runs, the graph gains points and the values move (the
    # cell allocates 2 MB per step).
    cell_bar = ".jp-Cell:not(:has(.resman-dashboard)) .resman-progress .widget-hprogress"
    page.wait_for_selector(cell_bar, state="attached", timeout=60_000)
    def grown():
        points = page.evaluate(MEMORY_POINTS)
        return points if points and len(points) >= len(first) + 3 else None

    later = _wait(grown, "the memory graph to gain points", timeout=60)
    assert len(set(later)) > 1, f"the memory values never changed: {later}"
    assert later[-1] != first[-1] or len(set(later)) > len(set(first))

    # The dashboard's Progress tab draws the same loop; it reaches 100 %.
    page.click(".resman-dashboard .lm-TabBar-tab:has-text('Progress')")
    done_bar = (".resman-progress-panel .resman-progress-row .widget-hprogress "
                ".progress-bar-success")
    page.wait_for_selector(done_bar, timeout=90_000)
    width = page.eval_on_selector(done_bar, "bar => bar.style.width")
    assert width == "100%", width
    assert "100%" in page.inner_text(".resman-progress-panel .resman-progress-row")

    # The bar under the cell ends as static HTML of the final state: 100 %, done.
    page.wait_for_selector(".jp-OutputArea .resman-progress-row[data-status='done']",
                           timeout=30_000)
    percent = page.inner_text(
        ".jp-OutputArea .resman-progress-row[data-status='done'] .resman-percent")
    assert percent.strip() == "100%"

    # A picture of the dashboard at work, for the README and for whoever reads a CI run.
    page.click(".resman-dashboard .lm-TabBar-tab:has-text('Monitor')")
    page.wait_for_timeout(1000)  # let plotly lay out the tab it was hidden in
    page.locator(".resman-dashboard").first.screenshot(path=str(screenshot))

    # All cells ran (the last one prints the text form of the dashboard).
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
        ".some(o => o.textContent.includes('jupyter_resman dashboard — home'))",
        timeout=60_000)
    errors = [message for message, stack in zip(page.errors, page.error_stacks)
              if not own_errors(stack)]
    assert errors == [], f"uncaught errors in the page: {errors}"
