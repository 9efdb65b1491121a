"""``resman log``: the tail of the shared log, filtered, and the slowest operations."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from jupyter_resman.commands import UsageError, run


@pytest.fixture
def logged(session):
    log = session.log
    logger = logging.getLogger("jupyter_resman.cache")
    for i in range(5):
        logger.info("evicted %d entries", i)
    with log.context(step="fit"):
        logging.getLogger("jupyter_resman.monitor").warning("memory at 85%")
    logging.getLogger("jupyter_resman.resources").error("resource 'db' is unhealthy")
    with log.timer("load", slow_s=0):
        pass
    with log.timer("fit", slow_s=0):
        pass
    return session


def test_tail_and_filters(logged):
    out = run(["log"], logged)
    assert len(out.table) == 9 and out.table["level"].iloc[0] == "INFO"
    warnings_up = run(["log", "--level", "warning"], logged).table
    assert warnings_up["level"].tolist() == ["WARNING", "ERROR"]
    assert warnings_up["message"].iloc[0] == "memory at 85%  step=fit"
    last = run(["log", "--lines", "2"], logged).table
    assert last["logger"].tolist() == ["timing", "timing"]
    cache = run(["log", "--logger", "cache"], logged)
    assert len(cache.table) == 5 and "logger cache" in cache.title
    assert cache.data[-1]["message"] == "evicted 4 entries"


def test_slowest_operations(logged):
    out = run(["log", "--slowest"], logged)
    assert sorted(out.table["operation"]) == ["fit", "load"]
    assert out.table["calls"].tolist() == [1, 1]


def test_bad_arguments_and_no_log_yet(session):
    with pytest.raises(UsageError):
        run(["log", "--level", "LOUD"], session)
    with pytest.raises(UsageError):
        run(["log", "--lines", "0"], session)
    out = run(["log"], session)
    assert "No log yet" in out.message


def test_cli_process_reads_the_kernels_log(logged):
    env = {**os.environ, "RESMAN_HOME": str(logged.home.root)}
    env.pop("RESMAN_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-m", "jupyter_resman.cli", "log", "--level", "ERROR"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "resource 'db' is unhealthy" in out.stdout and "evicted" not in out.stdout
