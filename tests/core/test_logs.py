"""session.log: JSON lines, rotation (also by 4 processes at once), context fields, timing,
one handler per log file, and the records the core modules write."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

import jupyter_resman as resman
from jupyter_resman.core.errors import ConfigError, LeakWarning, ResourceLimitExceeded
from jupyter_resman.core.logs import LogManager, read_log
from jupyter_resman.core.logs.reader import log_files
from jupyter_resman.core.resources import FactoryProvider

ROOT = logging.getLogger("jupyter_resman")


def handlers_of_ours():
    from jupyter_resman.core.logs.handlers import SharedRotatingFileHandler

    return [h for h in ROOT.handlers if isinstance(h, SharedRotatingFileHandler)]


@pytest.fixture
def logs(tmp_path):
    managers = []

    def make(**kwargs):
        kwargs.setdefault("path", tmp_path / "logs" / "resman.log")
        kwargs.setdefault("environ", {})
        manager = LogManager(**kwargs)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


def test_json_lines_parse_and_carry_context(logs):
    log = logs(format="json")
    cache_log = logging.getLogger("jupyter_resman.cache")
    with log.context(step="validate", dataset="d1"):
        cache_log.info("evicted %d entries", 3, extra={"bytes": 4096})
        try:
            {}["missing"]
        except KeyError:
            cache_log.exception("lookup failed\nsecond line")
    cache_log.info("outside")
    lines = log.path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) == 3
    first = records[0]
    assert first["message"] == "evicted 3 entries" and first["level"] == "INFO"
    assert first["logger"] == "jupyter_resman.cache" and first["pid"] == os.getpid()
    assert (first["step"], first["dataset"], first["bytes"]) == ("validate", "d1", 4096)
    assert "KeyError" in records[1]["exc_info"] and records[1]["message"].endswith("second line")
    assert "step" not in records[2]
    entries = log.tail()
    assert entries[1].message.startswith("lookup failed\nsecond line\nTraceback")
    assert entries[0].fields == {"step": "validate", "dataset": "d1", "bytes": 4096}


def test_text_lines_read_back_with_their_fields(logs):
    log = logs()
    logger = log.logger("demo")
    with log.context(step="fit", note='has  {"braces"} inside'):
        logger.warning("message with  {json-like} text\nand a second line")
    logger.error("plain")
    first, second = log.tail()
    assert first.message == 'message with  {json-like} text\nand a second line'
    assert first.fields == {"note": 'has  {"braces"} inside', "step": "fit"}
    assert (first.level, first.logger, first.pid) == ("WARNING", "jupyter_resman.demo",
                                                      os.getpid())
    assert second.message == "plain" and second.fields == {}
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


def test_the_file_rotates_by_size_and_keeps_n_backups(logs):
    log = logs(max_bytes=2000, backups=3)
    logger = log.logger("demo")
    for i in range(200):
        logger.info("record %04d %s", i, "x" * 40)
    files = log_files(log.path)
    assert [f.name for f in files] == ["resman.log", "resman.log.1", "resman.log.2",
                                       "resman.log.3"]
    assert all(f.stat().st_size <= 2000 for f in files)
    entries = read_log(log.path, lines=None)
    numbers = [int(e.message.split()[1]) for e in entries]
    assert numbers == list(range(numbers[0], 200))  # the newest, in order, none missing
    assert log.tail(5)[-1].message.startswith("record 0199")


WRITER = textwrap.dedent("""
    import logging, sys
    from jupyter_resman.core.logs import LogManager
    manager = LogManager(path=sys.argv[1], format="json", max_bytes=8000, backups=200,
                         environ={})
    log = logging.getLogger("jupyter_resman.worker")
    for i in range(300):
        log.info("line", extra={"writer": int(sys.argv[2]), "seq": i, "pad": "y" * 60})
    manager.close()
""")


def test_four_processes_share_one_rotating_file(tmp_path):
    path = tmp_path / "shared.log"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)])
             for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    files = log_files(path)
    assert len(files) > 10  # it rotated many times, while all four were writing
    seen = []
    for file in files:
        for line in file.read_text().splitlines():
            record = json.loads(line)  # no torn or interleaved line
            seen.append((record["writer"], record["seq"]))
    assert sorted(seen) == [(w, i) for w in range(4) for i in range(300)]  # none lost or doubled


def test_context_is_per_thread_and_task_and_nests(logs):
    log = logs()
    logger = log.logger("ctx")
    with log.context(run="r1"):
        with log.context(step="a"):
            logger.info("inner")
        other = threading.Thread(target=lambda: logger.info("thread"))
        other.start()
        other.join()

        async def task(name):
            with log.context(task=name):
                await asyncio.sleep(0.01)
                logger.info("task %s", name)

        async def main():
            await asyncio.gather(task("t1"), task("t2"))

        asyncio.run(main())
    fields = {e.message: e.fields for e in log.tail()}
    assert fields["inner"] == {"run": "r1", "step": "a"}
    assert fields["thread"] == {}  # a new thread starts without the caller's context
    assert fields["task t1"] == {"run": "r1", "task": "t1"}
    assert fields["task t2"] == {"run": "r1", "task": "t2"}
    with pytest.raises(ValueError, match="clash"):
        with log.context(levelname="x"):
            pass


def test_timer_and_decorator_feed_the_slowest_table(logs):
    log = logs(level="INFO", slow_s=0.05)

    @log.timed
    def quick():
        return 1

    @log.timed("load data")
    def slow():
        threading.Event().wait(0.06)

    @log.timed
    async def fetch():
        await asyncio.sleep(0)
        return 2

    assert quick() == 1 and asyncio.run(fetch()) == 2
    slow()
    with pytest.raises(RuntimeError):
        with log.timer("fit", model="rf"):
            raise RuntimeError("diverged")
    table = log.slowest()
    assert table["operation"].iloc[0] == "load data"
    rows = table.set_index("operation")
    assert rows.loc["fit", "failures"] == 1 and rows.loc["load data", "max_s"] >= 0.06
    assert set(rows.index) == {"load data", "fit", f"{quick.__qualname__}",
                               f"{fetch.__qualname__}"}
    entries = log.tail(logger="timing")  # only slow or failed ones reach an INFO file
    assert [e.fields["operation"] for e in entries] == ["load data", "fit"]
    assert entries[1].fields["ok"] is False and entries[1].fields["model"] == "rf"


def test_one_handler_per_file_however_many_sessions(home, tmp_path):
    before = len(handlers_of_ours())
    level_before = ROOT.level
    a, b = resman.Session(home=home), resman.Session(home=home)
    other = resman.Session(home=tmp_path / "other-home")
    try:
        managers = [a.log, b.log, other.log]
        assert len(handlers_of_ours()) == before + 2  # one per file, not one per session
        assert managers[0]._handler is managers[1]._handler is not managers[2]._handler
        logging.getLogger("jupyter_resman.demo").warning("once")
        assert [e.message for e in a.log.tail()] == ["once"]  # written once, not twice
        a.close()
        logging.getLogger("jupyter_resman.demo").warning("still logged")
        assert [e.message for e in b.log.tail()] == ["once", "still logged"]
    finally:
        a.close(), b.close(), other.close()
    assert len(handlers_of_ours()) == before and ROOT.level == level_before
    again = resman.Session(home=home)
    try:
        assert again.log.path == home / "logs" / "resman.log"
        assert len(handlers_of_ours()) == before + 1
    finally:
        again.close()


def test_configuration_from_environment_and_at_run_time(logs):
    log = logs(environ={"RESMAN_LOG_LEVEL": "warning", "RESMAN_LOG_FORMAT": "JSON",
                        "RESMAN_LOG_MAX_SIZE": "1MB", "RESMAN_LOG_BACKUPS": "2"})
    assert (log.level, log.format) == ("WARNING", "json")
    logger = log.logger("cfg")
    logger.info("hidden")
    log.configure(level="DEBUG", format="text")
    logger.debug("shown")
    assert [e.message for e in log.tail()] == ["shown"]
    for env in ({"RESMAN_LOG_LEVEL": "loud"}, {"RESMAN_LOG_FORMAT": "xml"},
                {"RESMAN_LOG_BACKUPS": "0"}, {"RESMAN_LOG_MAX_SIZE": "big"}):
        with pytest.raises(ConfigError, match=next(iter(env))):
            logs(environ=env)


def test_core_parts_write_to_the_session_log(session):
    session.log.configure(level="DEBUG")
    try:
        session.cache.get("never stored")
        session.checkpoints.save("run1", {"step": 1})
        resources = session.resources
        resources.register_provider("db", FactoryProvider(object))
        resources.acquire("db", owner="cell-5")
        with pytest.warns(LeakWarning):
            resources.check_leaks("cell-5")
        session.monitor.set_limits(memory="1KB")
        with pytest.raises(ResourceLimitExceeded):
            session.monitor.check_limits()
        by_logger = {}
        for entry in session.log.tail(None):
            by_logger.setdefault(entry.logger, []).append(entry.message)
    finally:
        session.log.configure(level="INFO")
    assert any("miss" in m for m in by_logger["jupyter_resman.cache"])
    assert any("saved version 1" in m for m in by_logger["jupyter_resman.checkpoint"])
    resource_lines = by_logger["jupyter_resman.resources"]
    assert any("registered resource 'db'" in m for m in resource_lines)
    assert any("resource leak: cell-5" in m for m in resource_lines)
    assert any("memory" in m for m in by_logger["jupyter_resman.monitor"])
