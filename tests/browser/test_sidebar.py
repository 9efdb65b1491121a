"""The Resources sidebar in a real JupyterLab, driven by a headless Chromium.

One notebook's kernel starts the monitor, fills the cache and runs a nested
progress loop; a second notebook's kernel sits idle. Through the UI only:
the status-bar item opens the sidebar, the current notebook's kernel is
listed first and its memory graph gains points, the progress bar moves and
finishes, and clearing the cache behind its confirmation dialog empties the
cache (checked through the REST API). A screenshot of the sidebar is kept
in ``test-artifacts/sidebar.png``.
"""

from __future__ import annotations

import time

import nbformat

KERNEL_CODE = """\
import time
import numpy as np
import jupyter_resman as resman

session = resman.get_session()
session.monitor.start(interval=0.5)
for i in range(20):
    session.cache.set(f"item-{i}", np.arange(1000) * i, namespace="browser")
session.cache.get("item-0", namespace="browser")
session.cache.get("no-such-item", namespace="browser")
time.sleep(1.1)
session.cache.get("item-1", namespace="browser")  # flushes the counts above (at most 1/s)

for epoch in resman.track(range(4), desc="epochs"):
    for batch in resman.track(range(10), desc="batches"):
        time.sleep(0.4)
print("loop finished")
"""

#: Long enough for the graph and the bar to be seen moving, short enough for CI.
LOOP_SECONDS = 4 * 10 * 0.4


def _notebook(path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


def _wait(predicate, what: str, timeout: float = 30.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _session_kernel(lab, path: str):
    """The kernel of the server's session for ``path`` once it is idle, else None."""
    for session in lab.api("api/sessions"):
        kernel = session.get("kernel") or {}
        if session.get("path") == path and kernel.get("execution_state") == "idle":
            return kernel["id"]
    return None


def _attr(page, selector: str, name: str):
    element = page.query_selector(selector)
    return None if element is None else element.get_attribute(name)


def test_sidebar_follows_a_real_kernel(lab, page, artifacts):
    _notebook(lab.root / "demo.ipynb", KERNEL_CODE)
    _notebook(lab.root / "aaa-idle.ipynb", "x = 1")
    # A second kernel whose notebook sorts first by name: the current one must still lead.
    other = lab.api("api/sessions", "POST", {"path": "aaa-idle.ipynb", "type": "notebook",
                                             "name": "aaa-idle.ipynb",
                                             "kernel": {"name": "python3"}})

    page.goto(f"{lab.url}lab/tree/demo.ipynb?token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    kernel_id = _wait(lambda: _session_kernel(lab, "demo.ipynb"), "the notebook's kernel",
                      timeout=60)

    # The status-bar item shows memory; clicking it opens the sidebar.
    status = page.wait_for_selector(".jp-resman-status", timeout=30_000)
    page.wait_for_function(
        "() => /Mem: \\d/.test(document.querySelector('.jp-resman-status').textContent)",
        timeout=30_000)
    status.click()
    page.wait_for_selector("#jupyter-resman-sidebar", state="visible", timeout=10_000)

    # The current notebook's kernel is listed first, the other kernel after it.
    current = f'.jp-resman-card[data-kernel="{kernel_id}"]'
    page.wait_for_selector(f"{current}.jp-mod-current", timeout=30_000)
    page.wait_for_selector(f'.jp-resman-card[data-kernel="{other["kernel"]["id"]}"]',
                           timeout=30_000)
    order = page.eval_on_selector_all(
        ".jp-resman-card[data-kernel]", "cards => cards.map(c => c.dataset.kernel)")
    assert order[0] == "system"
    assert order[1] == kernel_id, order

    # Not awaited: the command's promise resolves only once the cell has finished.
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # Its memory graph gains points (the kernel's monitor publishes samples).
    chart = f"{current} .jp-resman-chart"
    page.wait_for_selector(f"{chart} canvas", timeout=30_000)
    start_points = int(_attr(page, chart, "data-points") or 0)
    page.wait_for_function(
        "([selector, n]) => +document.querySelector(selector).dataset.points > n",
        arg=[chart, start_points + 3], timeout=30_000)

    # The outer bar moves while the loop runs, with the inner bar nested under it.
    epochs = '.jp-resman-progress-row[data-desc="epochs"]'
    page.wait_for_selector(f'{epochs}[data-status="running"]', timeout=30_000)
    first = float(_attr(page, epochs, "data-percent") or 0)
    page.wait_for_function(
        "([selector, first]) => { const row = document.querySelector(selector);"
        " return row && row.dataset.percent !== '' && +row.dataset.percent > first; }",
        arg=[epochs, first], timeout=30_000)
    batches = page.wait_for_selector('.jp-resman-progress-row[data-desc="batches"]',
                                     timeout=10_000)
    assert batches.get_attribute("data-depth") == "1"

    # The cache section shows what the kernel stored.
    page.wait_for_function(
        "() => { const f = document.querySelector('.jp-resman-figures');"
        " return f && +f.dataset.entries >= 20; }", timeout=40_000)
    page.wait_for_selector('.jp-resman-table tr[data-namespace="browser"]', timeout=10_000)

    # A picture of the sidebar at work, for the README and for whoever reads a CI run,
    # widened the way a user would: by dragging the split handle.
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)")
    box = handle.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 170, box["y"] + 300, steps=5)
    page.mouse.up()
    page.wait_for_timeout(500)  # let the charts take the new width
    page.locator("#jupyter-resman-sidebar").screenshot(path=str(artifacts / "sidebar.png"))

    # The bar finishes (finished trees stay listed for 30 s).
    page.wait_for_selector(f'{epochs}[data-status="done"]', timeout=LOOP_SECONDS * 1000 + 30_000)
    assert _attr(page, epochs, "data-percent") == "100.0"

    # Clear all, behind a confirmation dialog: cancelling keeps everything...
    assert lab.api("resman/api/cache")["stats"]["entries"] >= 20
    page.click(".jp-resman-clear-all")
    dialog = page.wait_for_selector(".jp-Dialog", timeout=10_000)
    assert "Clear the whole cache?" in dialog.inner_text()
    page.click(".jp-Dialog .jp-mod-reject")
    page.wait_for_selector(".jp-Dialog", state="detached", timeout=10_000)
    assert lab.api("resman/api/cache")["stats"]["entries"] >= 20

    # ...confirming empties the cache, as the API reports and the section shows.
    page.click(".jp-resman-clear-all")
    page.wait_for_selector(".jp-Dialog", timeout=10_000)
    page.click(".jp-Dialog .jp-mod-warn")
    page.wait_for_selector(".jp-Dialog", state="detached", timeout=10_000)
    _wait(lambda: lab.api("resman/api/cache")["stats"]["entries"] == 0,
          "the cache to be empty", timeout=15)
    page.wait_for_function(
        "() => +document.querySelector('.jp-resman-figures').dataset.entries === 0",
        timeout=15_000)

    assert page.errors == [], f"uncaught errors in the page: {page.errors}"
