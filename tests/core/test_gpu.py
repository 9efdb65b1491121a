"""GPU metrics: silent without a driver; NVML answers parsed (fake NVML module object).

The fake stands in for the *driver*, not for the code under test: it has
the same function names and error classes as ``pynvml``, and only the
parsing in ``GpuReader`` is exercised against it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from types import SimpleNamespace

from jupyter_resman.core.gpu import GpuReader, GpuUsage
from jupyter_resman.core.usage import SystemSampler

GiB = 2**30


class FakeNVML:
    """A driver with configurable devices; records init/shutdown calls."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    def __init__(self, devices=None, *, init_error=None, names_as_bytes=False):
        self.devices = devices if devices is not None else []
        self.init_error = init_error
        self.names_as_bytes = names_as_bytes
        self.inits = self.shutdowns = 0

    def nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.devices[index]

    def _get(self, handle, key):
        value = handle.get(key)
        if value is None:
            raise self.NVMLError_NotSupported("Not Supported")
        return value

    def nvmlDeviceGetName(self, handle):
        name = self._get(handle, "name")
        return name.encode() if self.names_as_bytes else name

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=self._get(handle, "util"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle):
        used, total = self._get(handle, "mem")
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._get(handle, "temp")

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._get(handle, "power_mw")

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in handle.get("procs", [])]


H100 = {"name": "NVIDIA H100", "util": 87, "mem": (20 * GiB, 80 * GiB), "temp": 61,
        "power_mw": 350250, "procs": [(1234, 10 * GiB), (99, None)]}
MIG = {"name": "MIG 1g.10gb", "util": None, "mem": (GiB, 10 * GiB), "temp": None,
       "power_mw": None, "procs": [(1234, GiB)]}


def test_devices_are_parsed():
    nvml = FakeNVML([H100, MIG])
    reader = GpuReader(nvml)
    assert reader.available
    first, second = reader.read()
    assert first == GpuUsage(index=0, name="NVIDIA H100", util_percent=87.0, mem_used=20 * GiB,
                             mem_total=80 * GiB, temperature=61.0, power_w=350.25)
    assert first.mem_percent == 25.0
    # Unsupported queries (common on MIG slices and laptops) are None, not errors.
    assert (second.util_percent, second.temperature, second.power_w) == (None, None, None)
    assert second.mem_percent == 10.0
    reader.close()


def test_flat_keys_per_device():
    reader = GpuReader(FakeNVML([H100, MIG]))
    flat = {}
    for gpu in reader.read():
        flat.update(gpu.to_dict())
    assert flat["gpu0_util"] == 87.0 and flat["gpu0_mem_used"] == 20 * GiB
    assert flat["gpu1_util"] is None and flat["gpu1_mem_total"] == 10 * GiB
    json.dumps(flat)  # JSON-able for the live feed
    reader.close()


def test_old_bindings_returning_bytes_names():
    reader = GpuReader(FakeNVML([H100], names_as_bytes=True))
    assert reader.read()[0].name == "NVIDIA H100"
    reader.close()


def test_process_memory_sums_devices_and_skips_unknown():
    reader = GpuReader(FakeNVML([H100, MIG]))
    assert reader.process_memory() == {1234: 11 * GiB}
    reader.close()


def test_init_failure_means_no_gpus_no_warning_and_one_attempt(caplog):
    nvml = FakeNVML([H100], init_error=FakeNVML.NVMLError("Driver Not Loaded"))
    reader = GpuReader(nvml)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.INFO, logger="jupyter_resman"):
            for _ in range(5):
                assert reader.read() == ()
    assert not reader.available
    assert reader.process_memory() == {}
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    reader.close()
    assert nvml.shutdowns == 0  # never initialised, never shut down


def test_close_shuts_nvml_down_once():
    nvml = FakeNVML([H100])
    reader = GpuReader(nvml)
    assert len(reader.read()) == 1
    reader.close()
    reader.close()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    assert reader.read() == ()


def test_no_devices():
    reader = GpuReader(FakeNVML([]))
    assert reader.read() == ()
    assert not reader.available
    reader.close()


def test_sampler_adds_gpu_keys_only_with_devices(tmp_path):
    with_gpu = SystemSampler(tmp_path, gpu_reader=GpuReader(FakeNVML([H100])))
    flat = with_gpu.sample().to_dict()
    assert flat["gpu0_util"] == 87.0
    with_gpu.close()
    without = SystemSampler(tmp_path, gpu=False).sample().to_dict()
    assert not [k for k in without if k.startswith("gpu")]


def test_real_nvml(tmp_path):
    """The real pynvml in a fresh process: silent without a driver, devices with one.

    This machine has nvidia-ml-py but no NVIDIA driver; on a GPU machine the
    same test checks that the devices are reported instead.
    """
    probe = subprocess.run([sys.executable, "-c", "import pynvml; pynvml.nvmlInit()"],
                           capture_output=True, text=True, timeout=60)
    has_driver = probe.returncode == 0
    script = (
        "import warnings, logging, sys\n"
        "warnings.simplefilter('error')\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from jupyter_resman.core.gpu import GpuReader\n"
        "from jupyter_resman.core.usage import SystemSampler\n"
        "r = GpuReader()\n"
        "gpus = r.read()\n"
        "s = SystemSampler(sys.argv[1])\n"
        "keys = sorted({k for _ in range(3) for k in s.sample().to_dict()\n"
        "               if k.startswith('gpu')})\n"
        "print(len(gpus), r.available, all(g.mem_total for g in gpus), keys[:2])\n"
        "r.close(); s.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    count, available, totals, keys = done.stdout.split(" ", 3)
    if has_driver:
        assert int(count) >= 1 and available == "True" and totals == "True"
        assert "gpu0_mem_percent" in keys
    else:
        assert (count, available, keys.strip()) == ("0", "False", "[]")
        assert done.stderr == ""  # no warning, no log line at INFO or above
