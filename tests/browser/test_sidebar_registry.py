"""The sidebar's Resource providers and Registry sections in a real JupyterLab (headless Chromium).

A process registers a plate of wells in the lab's home; a notebook's kernel
registers a resource provider and holds two of its resources. Through the UI
only: the providers section shows the provider healthy with both resources
held by the cell; the registry section lists the plate, filters by name and
kind, and opening the plate shows its wells, opening a well shows its place
(the plate) and its history. A screenshot is kept in
``test-artifacts/sidebar-registry.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import nbformat

from .test_sidebar import _notebook, _session_kernel, _wait

REGISTER = """
import jupyter_resman as r
from jupyter_resman.core.registry import Asset, Consumable, Grid
reg = r.get_session().registry
plate = reg.add(Grid(name="plate 7", resource_class="plate", rows=8, columns=12,
                     attributes={"experiment": "E7"}))
for col in range(3):
    reg.set_child(plate, (0, col), Asset(name=f"A{col + 1}", resource_class="sample"))
reg.add(Consumable(name="PBS buffer", resource_class="reagent", quantity=450, unit="mL"))
print(plate.id)
"""

PROVIDER_CELL = """\
from jupyter_resman import get_session
from jupyter_resman.core.resources import FactoryProvider, PoolConfig
s = get_session()
s.resources.register_provider("lab-db", FactoryProvider(dict, kind="sql"), PoolConfig(max_size=4))
held = [s.resources.acquire("lab-db") for _ in range(2)]  # kept past the cell, on purpose
s.resources.health()
"""


def _collapse_other_sections(page, keep: set[str]) -> None:
    """Fold the sidebar's other sections, as a user would, to give these two the room."""
    titles = page.locator("#jupyter-resman-sidebar .lm-AccordionPanel-title")
    for i in range(titles.count()):
        title = titles.nth(i)
        expanded = title.get_attribute("aria-expanded") == "true"
        if title.text_content().strip() not in keep and expanded:  # inner_text is upper-cased
            title.click()


def _drag(page, selector: str, dx: float, dy: float) -> None:
    box = page.locator(selector).first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()
    page.mouse.move(0, 0)  # no hover highlight left in the picture


def _screenshot(page, path) -> None:
    """The sidebar widened, and the providers section given room, as a user would drag them."""
    _drag(page, "#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)", 170, 0)
    # The one handle left between two open sections: the one above the registry.
    _drag(page, "#jupyter-resman-sidebar .lm-SplitPanel-handle:not(.lm-mod-hidden)", 0, 110)
    page.wait_for_timeout(500)  # let the layout settle
    page.locator("#jupyter-resman-sidebar").screenshot(path=str(path))


def test_providers_and_registry_sections(lab, page, artifacts):
    env = {**os.environ, "RESMAN_HOME": str(lab.home)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(REGISTER)], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    plate_id = out.stdout.strip()

    # The extension's cell hooks charge what a cell takes to it, and publish after each cell.
    nb = lab.root / "providers.ipynb"
    _notebook(nb, "%load_ext jupyter_resman")
    notebook = nbformat.read(str(nb), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROVIDER_CELL))
    nbformat.write(notebook, str(nb))

    # ?reset: a clean workspace, not the notebooks earlier tests left open in the shared lab.
    page.goto(f"{lab.url}lab/tree/providers.ipynb?reset&token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=60_000)
    kernel_id = _wait(lambda: _session_kernel(lab, "providers.ipynb"), "the notebook's kernel",
                      timeout=60)
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.evaluate("() => window.jupyterapp.commands.execute('jupyter-resman:open')")
    page.wait_for_selector("#jupyter-resman-sidebar", state="visible", timeout=10_000)
    _collapse_other_sections(page, {"Resource providers", "Registry"})

    # -- resource providers: the kernel's provider, healthy, two held by the cell --------------
    card = (f'.jp-resman-provider-group[data-kernel="{kernel_id}"] '
            '.jp-resman-provider[data-provider="lab-db"]')
    page.wait_for_selector(f'{card}[data-in-use="2"][data-health="healthy"]', timeout=60_000)
    assert page.inner_text(f"{card} .jp-resman-card-figures").startswith("sql")
    owner = page.wait_for_selector(f"{card} .jp-resman-provider-owners li", timeout=10_000)
    assert owner.get_attribute("data-owner").startswith("cell-")
    assert "2 held, longest" in owner.inner_text()
    assert page.inner_text(f"{card} .jp-resman-provider-metrics").startswith("2 acquired")
    assert "2/4 in use" in page.inner_text(card)

    # -- registry: the list, filters, a container and a well in depth ----------------------------
    registry = "#jupyter-resman-registry"
    plate_row = f'{registry} .jp-resman-registry-row[data-resource-id="{plate_id}"]'
    page.wait_for_selector(plate_row, timeout=30_000)
    pager = page.wait_for_selector(f"{registry} .jp-resman-registry-pager", timeout=10_000)
    assert pager.get_attribute("data-total") == "5"

    page.fill(f"{registry} .jp-resman-registry-name input", "A")  # names containing "a"
    page.wait_for_function(
        "s => document.querySelector(s).dataset.total === '4'",
        arg=f"{registry} .jp-resman-registry-pager", timeout=15_000)
    page.select_option(f"{registry} .jp-resman-registry-kind select", "grid")
    page.wait_for_function(
        "s => document.querySelector(s).dataset.total === '1'",
        arg=f"{registry} .jp-resman-registry-pager", timeout=15_000)
    names = page.eval_on_selector_all(f"{registry} .jp-resman-registry-row",
                                      "rows => rows.map(r => r.dataset.name)")
    assert names == ["plate 7"]

    page.click(plate_row)
    details = f'{registry} .jp-resman-registry-details[data-resource-id="{plate_id}"]'
    page.wait_for_selector(details, timeout=15_000)
    assert "attributes.experiment" in page.inner_text(f"{details} .jp-resman-registry-fields")
    children = page.eval_on_selector_all(f"{details} .jp-resman-registry-children .jp-resman-link",
                                         "links => links.map(a => a.textContent)")
    assert children == ["A1", "A2", "A3"]

    # Open a well from the plate's contents: its place is the plate, its history two changes.
    page.click(f'{details} .jp-resman-registry-children .jp-resman-link:text-is("A2")')
    well = f"{registry} .jp-resman-registry-details:not([data-resource-id=\"{plate_id}\"])"
    page.wait_for_selector(f"{well} .jp-resman-registry-place .jp-resman-link", timeout=15_000)
    assert page.inner_text(f"{well} .jp-resman-card-title") == "A2"
    assert page.inner_text(f"{well} .jp-resman-registry-place .jp-resman-link") == "plate 7"
    changes = page.eval_on_selector_all(f"{well} .jp-resman-registry-history tr",
                                        "rows => rows.map(r => r.dataset.change)")
    assert changes == ["updated", "added"]

    _screenshot(page, artifacts / "sidebar-registry.png")

    # Back up to the plate through the breadcrumb.
    page.click(f"{well} .jp-resman-registry-place .jp-resman-link")
    page.wait_for_selector(details, timeout=15_000)

    assert page.errors == [], f"uncaught errors in the page: {page.errors}"
