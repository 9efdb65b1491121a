import os
import stat
import subprocess
import sys

import pytest

from jupyter_resman.core.errors import ConfigError, InsecureHomeError
from jupyter_resman.core.home import Home, load_or_create_key
from jupyter_resman.core.settings import Settings


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_created_private(tmp_path):
    home = Home(Settings(home=tmp_path / "h"))
    for path in (home.root, home.cache_dir, home.checkpoints_dir, home.datasets_dir,
                 home.configs_dir, home.logs_dir):
        assert path.is_dir()
        assert mode(path) == 0o700


def test_existing_open_folder_is_tightened(tmp_path):
    root = tmp_path / "h"
    root.mkdir(mode=0o777)
    os.chmod(root, 0o777)
    Home(Settings(home=root))
    assert mode(root) == 0o700


def test_cache_dir_may_not_contain_the_home(tmp_path):
    with pytest.raises(ConfigError, match="RESMAN_CACHE_DIR"):
        Home(Settings(home=tmp_path / "h", cache_dir=tmp_path))


def test_symlinked_subfolder_is_refused(tmp_path):
    root = tmp_path / "h"
    Home(Settings(home=root))
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rmdir(root / "datasets")
    os.symlink(outside, root / "datasets")
    with pytest.raises(InsecureHomeError, match="symlink"):
        Home(Settings(home=root))


def test_folder_owned_by_someone_else_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to chown a folder to another user")
    root = tmp_path / "h"
    root.mkdir()
    os.chown(root, 12345, 12345)
    with pytest.raises(InsecureHomeError, match="owned by uid 12345"):
        Home(Settings(home=root))


def test_key_is_created_once_0600(tmp_path):
    home = Home(Settings(home=tmp_path / "h"))
    key = home.secret_key()
    assert len(key) == 32
    assert mode(home.key_file) == 0o600
    assert home.secret_key() == key
    assert home.key_file.parent == home.root  # outside the cache folder


def test_key_readable_by_others_is_refused(tmp_path):
    home = Home(Settings(home=tmp_path / "h"))
    home.secret_key()
    os.chmod(home.key_file, 0o644)
    with pytest.raises(InsecureHomeError, match="chmod 600"):
        home.secret_key()


def test_concurrent_key_creation_agrees(tmp_path):
    path = tmp_path / "secret.key"
    code = (
        "import sys; from pathlib import Path; from jupyter_resman.core.home import load_or_create_key;"
        f"sys.stdout.write(load_or_create_key(Path({str(path)!r})).hex())"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(6)]
    keys = {p.communicate()[0] for p in procs}
    assert len(keys) == 1
    assert bytes.fromhex(keys.pop().decode()) == load_or_create_key(path)


def test_filesystem_type_finds_the_deepest_mount_even_with_spaces(tmp_path):
    from jupyter_resman.core.cache import Cache
    from jupyter_resman.core.home import filesystem_type

    assert filesystem_type(tmp_path) not in (None, "tmpfs") or os.uname().sysname != "Linux"
    mount = tmp_path / "in memory"  # mountinfo writes the space as \040
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        (mount / "sub").mkdir()
        assert filesystem_type(mount / "sub") == "tmpfs"
        cache = Cache(mount / "cache", secret_key=b"k" * 32)
        assert cache._in_memory_fs  # no preallocation there: it would zero-fill every page
        cache.set("big", bytes(5_000_000))
        assert cache.get("big", memory=False) == bytes(5_000_000)
        cache.close()
        on_disk = Cache(tmp_path / "disk", secret_key=b"k" * 32)
        assert not on_disk._in_memory_fs
        on_disk.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
