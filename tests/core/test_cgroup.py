"""Container limits read from cgroup v2 and v1 layouts (fixture trees under fixtures/cgroup)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psutil
import pytest

from jupyter_resman.core.cgroup import (
    Cgroup,
    CgroupLimits,
    parse_cpu_max,
    parse_memory_limit,
    parse_mountinfo,
    parse_proc_cgroup,
)
from jupyter_resman.core.usage import SystemSampler

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"
GiB = 2**30


def detect(name: str) -> Cgroup:
    return Cgroup.detect(FIXTURES / name)


# -- parsing ----------------------------------------------------------------------


def test_memory_limit_values():
    assert parse_memory_limit("max\n") is None
    assert parse_memory_limit("9223372036854771712") is None  # v1's "unlimited"
    assert parse_memory_limit("-1") is None
    assert parse_memory_limit("536870912\n") == 536870912
    with pytest.raises(ValueError):
        parse_memory_limit("lots")


def test_cpu_max_quota_and_period_give_cores():
    assert parse_cpu_max("max 100000") is None
    assert parse_cpu_max("150000 100000") == 1.5
    assert parse_cpu_max("50000 100000") == 0.5
    assert parse_cpu_max("200000 50000") == 4.0
    assert parse_cpu_max("100000") == 1.0  # period omitted: the kernel default 100 ms


def test_proc_cgroup_lines():
    text = ("12:pids:/docker/x\n4:cpu,cpuacct:/docker/x\n"
            "1:name=systemd:/init.scope\n0::/user.slice\n")
    assert parse_proc_cgroup(text) == {
        "pids": "/docker/x", "cpu": "/docker/x", "cpuacct": "/docker/x",
        "systemd": "/init.scope", "": "/user.slice",
    }
    assert parse_proc_cgroup("") == {}


def test_mountinfo_keeps_cgroup_mounts_and_unescapes_paths():
    text = (
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "41 31 0:33 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,relatime master:16 "
        "- cgroup cgroup rw,cpu,cpuacct\n"
        "50 31 0:26 / /mnt/my\\040cgroups rw shared:5 - cgroup2 cgroup2 rw,nsdelegate\n"
        "garbage line without separator\n"
    )
    mounts = parse_mountinfo(text)
    assert [(m.fstype, m.root, m.mount_point) for m in mounts] == [
        ("cgroup", "/docker/abc", "/sys/fs/cgroup/cpu,cpuacct"),
        ("cgroup2", "/", "/mnt/my cgroups"),
    ]
    assert {"cpu", "cpuacct"} <= mounts[0].super_options


# -- layouts ------------------------------------------------------------------------


def test_v2_limited_pod():
    cgroup = detect("v2_limited")
    assert cgroup.limits() == CgroupLimits(version=2, memory_limit=2 * GiB, cpu_limit=1.5)
    # Working set: memory.current minus inactive page cache.
    assert cgroup.memory_usage() == GiB - 268435456
    assert cgroup.cpu_usage() == 5.0


def test_v2_max_means_unlimited():
    cgroup = detect("v2_unlimited")
    assert cgroup.limits() == CgroupLimits(version=2, memory_limit=None, cpu_limit=None)
    assert cgroup.memory_dirs[0].name == "session-3.scope"
    assert cgroup.memory_usage() == 52428800 - 1000000
    assert cgroup.cpu_usage() == pytest.approx(0.123456)


def test_v2_smallest_limit_on_the_way_up_wins():
    cgroup = detect("v2_nested")
    limits = cgroup.limits()
    # The container says "max" / 2 cores, the pod above it 1 GiB / half a core.
    assert limits.memory_limit == GiB
    assert limits.cpu_limit == 0.5
    # Usage is read where the limit that bites is: the pod.
    assert cgroup.memory_usage() == 805306368 - 268435456
    assert cgroup.cpu_usage() == 7.0


def test_v1_docker_subtree_mount():
    cgroup = detect("v1_limited")
    assert cgroup.limits() == CgroupLimits(version=1, memory_limit=536870912, cpu_limit=2.0)
    # v1 memory.stat: the hierarchical total_inactive_file wins over inactive_file.
    assert cgroup.memory_usage() == 314572800 - 52428800
    assert cgroup.cpu_usage() == 2.5


def test_v1_hybrid_host_unlimited():
    cgroup = detect("v1_unlimited")
    assert cgroup.version == 1  # the empty unified mount is ignored
    assert cgroup.limits() == CgroupLimits(version=1, memory_limit=None, cpu_limit=None)
    assert cgroup.cpu_usage() == pytest.approx(116.728469591)


def test_no_cgroup_filesystem():
    cgroup = detect("none")
    assert cgroup.limits() == CgroupLimits()
    assert cgroup.memory_usage() is None
    assert cgroup.cpu_usage() is None


def test_missing_root_never_raises(tmp_path):
    cgroup = Cgroup.detect(tmp_path / "nowhere")
    assert cgroup.limits() == CgroupLimits()


def test_garbage_limit_files_are_ignored(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "v2_limited", root)
    (root / "sys/fs/cgroup/memory.max").write_text("not a number\n")
    (root / "sys/fs/cgroup/cpu.max").write_text("\n")
    assert Cgroup.detect(root).limits() == CgroupLimits(version=2)


def test_this_machine_detects_without_error():
    limits = Cgroup.detect().limits()
    assert limits.memory_limit is None or limits.memory_limit > 0
    assert limits.cpu_limit is None or limits.cpu_limit > 0


# -- limits applied by the system sampler ------------------------------------------------


def test_container_limits_become_the_effective_totals(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "v2_limited", root)
    host_total = psutil.virtual_memory().total
    logical = psutil.cpu_count()
    if host_total <= 2 * GiB or logical < 2:
        pytest.fail("this test needs a host with more than 2 GiB RAM and 2 CPUs")
    sampler = SystemSampler(tmp_path, gpu=False, cgroup=Cgroup.detect(root))
    first = sampler.sample()
    assert first.container_mem_limit == 2 * GiB
    assert first.mem_total == 2 * GiB  # a pod user sees the pod's limit, not the host's RAM
    assert first.mem_used == GiB - 268435456
    assert first.mem_percent == pytest.approx(100.0 * first.mem_used / (2 * GiB))
    assert first.mem_available <= 2 * GiB - first.mem_used
    assert first.container_cpus == 1.5 and first.cpu_count == 1.5

    # 0.075 s of CPU used by the container over >= 0.1 s of wall time, on 1.5 cores.
    time.sleep(0.1)
    (root / "sys/fs/cgroup/cpu.stat").write_text("usage_usec 5075000\n")
    second = sampler.sample()
    assert 0.0 < second.cpu_percent <= 50.0
    flat = second.to_dict()
    assert flat["container_mem_limit"] == 2 * GiB and flat["container_cpus"] == 1.5


def test_a_limit_above_the_host_ram_is_not_a_limit(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "v2_limited", root)
    huge = psutil.virtual_memory().total * 4
    (root / "sys/fs/cgroup/memory.max").write_text(f"{huge}\n")
    (root / "sys/fs/cgroup/cpu.max").write_text(f"{(psutil.cpu_count() + 8) * 100000} 100000\n")
    usage = SystemSampler(gpu=False, cgroup=Cgroup.detect(root)).sample()
    assert usage.container_mem_limit is None
    assert usage.mem_total == psutil.virtual_memory().total
    assert usage.container_cpus is None
