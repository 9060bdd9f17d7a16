"""kvik.prepare: the first read's setup done ahead of time (host only here; the device part runs
in fake_device/test_device.py)."""

import os

import pytest

import kvik


def test_prepare_host_starts_the_workers(tmp_path, data):
    def threads():
        return len(os.listdir("/proc/self/task"))

    assert kvik.prepare() is None
    n = threads()
    # The default pool's workers run now (earlier tests may have started them already).
    assert n >= 1 + kvik.defaults.get("num_threads")
    assert kvik.prepare() is None  # idempotent
    assert threads() == n
    # Host only: no bounce buffer is made.
    assert kvik.bounce_buffer_stats()["in_use"] == 0
    p = tmp_path / "f"
    p.write_bytes(data(10000))
    with kvik.CuFile(p) as f:
        buf = bytearray(10000)
        assert f.read(buf) == 10000
    assert bytes(buf) == data(10000)


def test_prepare_bad_device():
    with pytest.raises(kvik.Error) as ei:
        kvik.prepare(device=-2)
    assert ei.value.name == "KVIK_EINVAL" and "device is -2" in str(ei.value)


def test_prepare_device_without_cuda():
    if kvik.cuda_available():
        pytest.skip("a CUDA driver is installed here: the no-CUDA error cannot happen")
    with pytest.raises(kvik.Error) as ei:
        kvik.prepare(device=0)
    assert ei.value.name == "KVIK_ENOCUDA"
    assert "kvik_prepare: device 0" in str(ei.value) and "libcuda.so.1" in str(ei.value)
