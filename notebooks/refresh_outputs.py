"""Re-run the tutorials and store their outputs (for maintainers, after editing a notebook).

    python notebooks/refresh_outputs.py              # every tutorial
    python notebooks/refresh_outputs.py 05-dashboard.ipynb

Each notebook runs top to bottom in a fresh kernel (its first cell picks a
temporary ``RESMAN_HOME``), and is written back with its outputs. Two
things are removed so the stored notebooks read well without a kernel:
the live widget views in outputs that carry a static ``text/html`` version
next to them (a notebook opened later shows that snapshot instead of
"model not found"), and the saved widget state. ``pytest --nbval`` then
checks that a new run gives the same outputs, after the substitutions of
``nbval_sanitize.cfg``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={
        "metadata": {"path": str(HERE)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"refreshed {path.name}")


def main(names: list[str]) -> None:
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("[0-9]*.ipynb"))
    for path in paths:
        refresh(path)


if __name__ == "__main__":
    main(sys.argv[1:])
