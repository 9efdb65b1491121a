"""Live notebook widgets: monitor graphs, progress bars, cache, checkpoint, registry and
resource panels.

In a notebook cell::

    import jupyter_resman.widgets as rw
    rw.dashboard()        # the same as `%resman`

Every panel draws snapshots of the core (:mod:`jupyter_resman.core`) and
computes nothing itself; one background thread per dashboard keeps them
moving while a cell runs, and ``close()`` stops it. Each panel also renders
as plain text and static HTML, so a notebook viewed without a widget front
end (GitHub, nbconvert, a terminal IPython) shows its state instead of
"Failed to display Jupyter Widget".

Progress bars need no import: inside a notebook kernel, ``resman.track``
picks the ``"notebook"`` renderer (:class:`NotebookRenderer`) by itself —
``jupyter_resman/__init__.py`` registers it with a detector that looks only
at modules already loaded, so plain Python never imports ipywidgets.
"""

from __future__ import annotations

from .cache_panel import CachePanel
from .checkpoints_panel import CheckpointsPanel
from .dashboard import Dashboard
from .dashboard import dashboard as _dashboard
from .monitor_panel import MonitorPanel
from .progress_panel import NotebookRenderer, ProgressPanel, ProgressView
from .registry_panel import RegistryPanel
from .resources_panel import ResourcesPanel

# The submodule `dashboard` is imported above; the name now means the function
# (a later `import jupyter_resman.widgets.dashboard` finds the module in
# sys.modules and does not rebind it).
dashboard = _dashboard

__all__ = ["CachePanel", "CheckpointsPanel", "Dashboard", "MonitorPanel", "NotebookRenderer",
           "ProgressPanel", "ProgressView", "RegistryPanel", "ResourcesPanel", "dashboard"]
