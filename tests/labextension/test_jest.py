"""The sidebar's TypeScript unit tests (jest, in ``labextension/test/``), run by pytest.

They cover the model the sidebar draws from: history buffers, kernel
ordering, formatting, progress rows, cache hit rates, settings and the
polling decisions (with lumino's real ``Poll``). Node.js must be on the
PATH; ``jlpm`` comes with JupyterLab (a test dependency). The node modules
are the ones ``pip install .`` installed to build the extension, installed
here from ``yarn.lock`` if missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def _jlpm() -> list[str]:
    """``jlpm`` of this environment (next to the interpreter), else on the PATH."""
    for candidate in (Path(sys.executable).parent / "jlpm", shutil.which("jlpm")):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    pytest.fail("jlpm not found: install the test extras (`pip install \".[test]\"`, "
                "which brings JupyterLab and its jlpm)")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORCE_COLOR": "0"}
    return subprocess.run([*_jlpm(), *args], cwd=LABEXTENSION, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def test_jest_suite_passes():
    if shutil.which("node") is None:
        pytest.fail("Node.js is not on the PATH; it is needed to build and test the "
                    "JupyterLab extension (e.g. `apt-get install nodejs` or nvm)")
    if not (LABEXTENSION / "node_modules" / ".bin" / "jest").exists():
        # Exactly the locked versions: in CI (CI=true) yarn refuses to change yarn.lock.
        install = _run(["install"], timeout=600)
        assert install.returncode == 0, f"jlpm install failed:\n{install.stdout[-5000:]}"

    result = _run(["jest", "--ci"], timeout=600)

    assert result.returncode == 0, f"jest failed:\n{result.stdout[-20000:]}"
    # A passing run that ran nothing (a broken testRegex) must not count as a pass.
    summary = re.search(r"Tests:\s+(?:.*?)(\d+) passed, (\d+) total", result.stdout)
    assert summary, f"no jest summary in the output:\n{result.stdout[-5000:]}"
    passed, total = int(summary.group(1)), int(summary.group(2))
    assert passed == total and total >= 50, result.stdout[-5000:]
