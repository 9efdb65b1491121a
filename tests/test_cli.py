"""The ``resman`` command as a user runs it: a real process, real exit codes."""

import json
import os
import pty
import subprocess
import sys
import time

import pytest

import jupyter_resman as resman


def resman_cli(home, *args, input_text=None):
    env = {**os.environ, "RESMAN_HOME": str(home)}
    env.pop("RESMAN_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "jupyter_resman.cli", *args], env=env,
                          capture_output=True, text=True, input=input_text, timeout=60)


@pytest.fixture
def filled(home):
    with resman.Session(home=home) as s:
        s.cache.set("a", 1, tags=["exp1"])
        s.cache.set("b", 2, tags=["exp2"], namespace="emb")
        s.cache.get("a")
        s.cache.get("missing")
    return home


def test_stats_list_and_summary(filled):
    out = resman_cli(filled, "cache", "stats")
    assert out.returncode == 0, out.stderr
    assert "entries        2" in out.stdout and "50.0% hit rate" in out.stdout
    listing = resman_cli(filled, "cache", "list", "--namespace", "emb")
    assert "b" in listing.stdout and "exp2" in listing.stdout and "exp1" not in listing.stdout
    assert resman_cli(filled).returncode == 0


def test_json_output_parses(filled):
    out = resman_cli(filled, "--json", "cache", "stats")
    data = json.loads(out.stdout)
    assert data["entries"] == 2 and data["hits"] == 1 and data["misses"] == 1


def test_clear_needs_a_filter_or_all(filled):
    out = resman_cli(filled, "cache", "clear")
    assert out.returncode == 1
    assert "--all" in out.stderr and "Traceback" not in out.stderr


def test_clear_off_a_terminal_needs_yes(filled):
    out = resman_cli(filled, "cache", "clear", "--tag", "exp1")
    assert out.returncode == 1 and "--yes" in out.stderr
    with resman.Session(home=filled) as s:
        assert len(s.cache) == 2
    out = resman_cli(filled, "cache", "clear", "--tag", "exp1", "--yes")
    assert out.returncode == 0 and "Removed 1" in out.stdout
    with resman.Session(home=filled) as s:
        assert s.cache.keys() == [] and s.cache.keys("emb") == ["b"]


def _run_on_a_terminal(home, args, answer):
    """Run the CLI attached to a pseudo-terminal and type ``answer`` at its prompt."""
    env = {**os.environ, "RESMAN_HOME": str(home)}
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execvpe(sys.executable, [sys.executable, "-m", "jupyter_resman.cli", *args], env)
    output = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"[y/N]" in output:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


@pytest.mark.parametrize(("answer", "code", "left"), [("n", 1, 2), ("y", 0, 0)])
def test_clear_on_a_terminal_asks_first(filled, answer, code, left):
    rc, output = _run_on_a_terminal(filled, ["cache", "clear", "--all"], answer)
    assert "Remove all 2 entries" in output
    assert rc == code
    with resman.Session(home=filled) as s:
        assert len(s.cache) == left


def test_bad_arguments_show_usage_not_a_traceback(filled):
    out = resman_cli(filled, "cache", "clear", "--older-than", "soonish")
    assert out.returncode == 2
    assert out.stderr.startswith("usage: resman cache clear")
    assert "e.g. 90s" in out.stderr and "Traceback" not in out.stderr
    out = resman_cli(filled, "frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_bad_environment_is_a_clean_error(tmp_path):
    env = {**os.environ, "RESMAN_HOME": str(tmp_path), "RESMAN_MAX_CACHE": "lots"}
    out = subprocess.run([sys.executable, "-m", "jupyter_resman.cli", "cache", "stats"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "RESMAN_MAX_CACHE" in out.stderr and "Traceback" not in out.stderr


def test_config_shows_settings(home):
    out = resman_cli(home, "config")
    assert str(home) in out.stdout and "cache_policy" in out.stdout


def test_help_exits_zero(home):
    out = resman_cli(home, "--help")
    assert out.returncode == 0 and "cache" in out.stdout
