"""The core must not import any Jupyter front-end package (DESIGN.md)."""

import subprocess
import sys

FORBIDDEN = ("IPython", "ipywidgets", "traitlets", "tornado", "jupyter_server", "ipykernel")


def test_core_imports_no_frontend_package():
    code = (
        "import importlib, pkgutil, sys\n"
        "import jupyter_resman.core as core\n"
        "for info in pkgutil.walk_packages(core.__path__, core.__name__ + '.'):\n"
        "    if '.migrations' not in info.name:  # alembic scripts run only under alembic\n"
        "        importlib.import_module(info.name)\n"
        "for name in core.__all__: getattr(core, name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
