"""Fixtures of the browser tests: a real ``jupyter lab`` and a headless Chromium.

The server is a subprocess on a free localhost port with a token, its own
temp ``RESMAN_HOME``, root dir, Jupyter config/data/runtime dirs and user
settings, so nothing of the user's setup leaks in. It loads the server
extension and the labextension the way a user gets them: from what
``pip install`` put in place. The browser is Debian's Chromium driven by
Playwright (which cannot download its own browsers here).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Screenshots and logs a run leaves behind (gitignored; CI can keep them).
ARTIFACTS = REPO / "test-artifacts"

CHROMIUM = (os.environ.get("RESMAN_CHROMIUM") or shutil.which("chromium")
            or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

#: User settings for the run: poll every second (the default is 2 s) and no
#: news/update checks (no internet here, and no toast over the sidebar).
USER_SETTINGS = {
    "jupyter-resman/plugin.jupyterlab-settings": {"refreshInterval": 1},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A running ``jupyter lab`` and a small client for its REST API."""

    def __init__(self, root: Path, home: Path, log_path: Path) -> None:
        self.root = root
        self.home = home
        self.log_path = log_path
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, base: Path) -> None:
        settings_dir = base / "user-settings"
        for name, value in USER_SETTINGS.items():
            path = settings_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {
            **os.environ,
            "RESMAN_HOME": str(self.home),
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTER_DATA_DIR": str(base / "data"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            "IPYTHONDIR": str(base / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            # Lets the test run JupyterLab commands (run all cells) as a user would,
            # in JupyterLab and in Notebook 7 (served by the same server).
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={settings_dir}",
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.api("api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer in 90 s:\n{self.log_tail()}")
                time.sleep(0.25)

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Call a route with the token; JSON in, JSON out."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGTERM: the server shuts its kernels down before exiting.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if getattr(self, "log_file", None) is not None:
            self.log_file.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def lab(tmp_path_factory, artifacts):
    """A ``jupyter lab`` with its own home, root dir and settings; stopped after the session."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    server = LabServer(root, base / "resman-home", artifacts / "jupyter-lab.log")
    try:
        server.start(base)
        try:
            server.api("resman/api/metrics")
        except urllib.error.HTTPError as exc:
            pytest.fail(f"the jupyter_resman server extension does not answer "
                        f"(HTTP {exc.code}); is it installed and enabled "
                        f"(`jupyter server extension list`)?\n{server.log_tail()}")
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser():
    """Debian's headless Chromium under Playwright.

    Per test, so Playwright's event loop and its executor threads are gone
    before the suite's leaked-thread check runs.
    """
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (`apt-get install -y "
                    f"chromium`) or point RESMAN_CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser, artifacts, request):
    """A fresh page; uncaught page errors are collected in ``page.errors`` (their
    JavaScript stacks in ``page.error_stacks``)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.error_stacks = []  # type: ignore[attr-defined]

    def collect(error: Any) -> None:
        page.errors.append(str(error))  # type: ignore[attr-defined]
        page.error_stacks.append(error.stack or "")  # type: ignore[attr-defined]

    page.on("pageerror", collect)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(artifacts / f"{request.node.name}-failure.png"))
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so ``page`` can screenshot a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
