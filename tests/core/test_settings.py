from pathlib import Path

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.settings import Settings, format_size, parse_bool, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [(4096, 4096), ("4096", 4096), ("512MB", 512_000_000), ("512 mb", 512_000_000),
     ("1.5 GiB", int(1.5 * 2**30)), ("20GB", 20 * 10**9), ("1KiB", 1024), ("0", 0), ("2e3", 2000)],
)
def test_parse_size_accepts_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "12 parsecs", "-5MB", "", "MB", True, -1])
def test_parse_size_rejects_with_example(bad):
    with pytest.raises(ConfigError, match="512MB|size"):
        parse_size(bad, name="RESMAN_MAX_CACHE")


def test_parse_duration_and_bool():
    assert parse_duration("1h") == 3600
    assert parse_duration("15min") == 900
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration(2.5) == 2.5
    with pytest.raises(ConfigError, match="1h"):
        parse_duration("soon")
    assert parse_bool("TRUE") and parse_bool("on") and not parse_bool("0")
    with pytest.raises(ConfigError):
        parse_bool("maybe")


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(1_536_000) == "1.5 MB"


def test_from_env_reads_every_variable(tmp_path):
    env = {
        "RESMAN_HOME": str(tmp_path / "h"),
        "RESMAN_CACHE_DIR": str(tmp_path / "c"),
        "RESMAN_MAX_CACHE": "2GB",
        "RESMAN_MEMORY_CACHE": "64MiB",
        "RESMAN_CACHE_POLICY": "LFU",
        "RESMAN_ENABLE_CACHING": "false",
    }
    s = Settings.from_env(env)
    assert s.home == tmp_path / "h"
    assert s.cache_dir == tmp_path / "c"
    assert s.max_cache_bytes == 2 * 10**9
    assert s.memory_cache_bytes == 64 * 2**20
    assert s.cache_policy == "lfu"
    assert s.enable_caching is False


def test_defaults_and_cache_dir_under_home(tmp_path):
    s = Settings.from_env({"RESMAN_HOME": str(tmp_path)})
    assert s.cache_dir == tmp_path / "cache"
    assert s.max_cache_bytes == 20 * 10**9
    assert s.memory_cache_bytes == 512 * 10**6
    assert s.cache_policy == "lru" and s.enable_caching is True
    default = Settings.from_env({})
    assert "jupyter_resman" in str(default.home)


@pytest.mark.parametrize(
    ("var", "value"),
    [("RESMAN_MAX_CACHE", "big"), ("RESMAN_MEMORY_CACHE", "1 bazillion"),
     ("RESMAN_CACHE_POLICY", "random"), ("RESMAN_ENABLE_CACHING", "perhaps")],
)
def test_bad_env_value_names_the_variable(var, value, tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"RESMAN_HOME": str(tmp_path), var: value})
    assert var in str(info.value)
    assert "e.g." in str(info.value) or "use" in str(info.value)


def test_settings_are_frozen(tmp_path):
    s = Settings(home=tmp_path)
    with pytest.raises(AttributeError):
        s.home = Path("/elsewhere")  # type: ignore[misc]


def test_describe_is_plain(tmp_path):
    d = Settings(home=tmp_path, max_cache_bytes="1GB").describe()
    assert d["max_cache"] == "1.0 GB"
    assert d["registry_url"].startswith("sqlite:///")
