"""Every error path of the package: bad buffers, bad arguments, files, settings."""

import errno
import os

import numpy as np
import pytest

import kvik
from kvik import _kvik


@pytest.fixture
def f(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"0123456789" * 1000)
    with kvik.CuFile(p, "r+") as fh:
        yield fh


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        kvik.CuFile(tmp_path / "nope")
    e = ei.value
    assert isinstance(e, kvik.Error) and isinstance(e, OSError)
    assert e.errno == errno.ENOENT and e.code == -errno.ENOENT and e.name == "ENOENT"
    assert str(tmp_path / "nope") in str(e) and e.filename == str(tmp_path / "nope")


def test_directory_is_a_directory_error(tmp_path):
    with pytest.raises(IsADirectoryError):
        kvik.CuFile(tmp_path, "w")


def test_bad_flags(tmp_path):
    with pytest.raises(kvik.Error) as ei:
        kvik.CuFile(tmp_path / "x", "a")  # append is refused by kvik
    assert ei.value.name == "KVIK_EINVAL" and isinstance(ei.value, ValueError)
    with pytest.raises(kvik.Error):
        kvik.CuFile(tmp_path / "x", "q")


def test_wrong_mode(tmp_path):
    p = tmp_path / "m"
    p.write_bytes(b"abc")
    with kvik.CuFile(p, "r") as fh, pytest.raises(kvik.Error) as ei:
        fh.write(b"x")
    assert ei.value.name == "KVIK_EBADMODE" and "mode" in str(ei.value)
    with kvik.CuFile(tmp_path / "w", "w") as fh, pytest.raises(kvik.Error) as ei:
        fh.read(bytearray(3))
    assert ei.value.name == "KVIK_EBADMODE"
    with kvik.CuFile(p, "r") as fh, pytest.raises(kvik.Error):
        fh.pwrite(b"x").get()


def test_read_only_target_refused(f):
    for ro in (b"abc", memoryview(bytearray(3)).toreadonly(), np.zeros(3, np.uint8)):
        if isinstance(ro, np.ndarray):
            ro.flags.writeable = False
        for call in (f.read, f.pread, f.raw_read):
            with pytest.raises(ValueError, match="read-only"):
                call(ro)
    # Read-only memory is fine as the source of a write.
    assert f.write(b"abc") == 3


def test_non_contiguous_refused(f):
    a = np.zeros((10, 10), np.uint8)[:, ::2]
    for call in (f.read, f.write, f.pread, f.pwrite, f.raw_read, f.raw_write):
        with pytest.raises(ValueError, match="non-contiguous"):
            call(a)


def test_size_beyond_buffer_refused_before_io(tmp_path):
    p = tmp_path / "s"
    p.write_bytes(b"z" * 100)
    with kvik.CuFile(p, "r+") as fh:
        a = np.zeros(10, np.uint8)
        for call in (fh.read, fh.pread, fh.raw_read, fh.write, fh.pwrite, fh.raw_write):
            with pytest.raises(ValueError, match="exceeds"):
                call(a, 11)
        with pytest.raises(ValueError, match="exceeds"):
            fh.raw_read(a, 5, 0, 6)
        with pytest.raises(ValueError, match="past the end"):
            fh.raw_read(a, None, 0, 11)
        assert not a.any()
    assert p.read_bytes() == b"z" * 100  # nothing was written


def test_bad_numbers(f):
    a = np.zeros(10, np.uint8)
    with pytest.raises(ValueError):
        f.read(a, -1)
    with pytest.raises(ValueError):
        f.read(a, 5, -1)
    with pytest.raises(ValueError):
        f.read(a, 5, 0, -4)
    with pytest.raises(ValueError):
        f.raw_read(a, 5, 0, -1)
    with pytest.raises(ValueError):
        f.read(a, 2.5)
    with pytest.raises(ValueError):
        f.read(a, file_offset="0")


def test_not_a_buffer(f):
    for bad in (None, 3, "text", object()):
        with pytest.raises(TypeError, match="not a buffer"):
            f.read(bad)


def test_closed_file(tmp_path):
    p = tmp_path / "c"
    p.write_bytes(b"abc")
    fh = kvik.CuFile(p)
    fh.close()
    for call in (fh.fileno, fh.nbytes, fh.info, fh.open_flags, fh.is_direct_io_supported):
        with pytest.raises(ValueError, match="closed file"):
            call()
    for call in (fh.read, fh.pread, fh.raw_read):
        with pytest.raises(ValueError, match="closed file"):
            call(bytearray(3))


def test_cai_refusals(f):
    class CAI:
        def __init__(self, **kw):
            d = {"data": (0x1000, False), "shape": (16,), "typestr": "|u1", "version": 3}
            d.update(kw)
            self.__cuda_array_interface__ = d

    with pytest.raises(ValueError, match="non-contiguous"):
        f.read(CAI(shape=(4, 4), strides=(8, 1)))
    with pytest.raises(ValueError, match="mask"):
        f.read(CAI(mask=object()))
    with pytest.raises(ValueError, match="read-only"):
        f.read(CAI(data=(0x1000, True)))
    with pytest.raises(ValueError, match="exceeds"):
        f.read(CAI(), 17)
    with pytest.raises(ValueError, match="stream 0"):
        f.read(CAI(stream=0))
    with pytest.raises(ValueError, match="typestr"):
        f.read(CAI(typestr="?"))


def test_dlpack_bad_capsule(f):
    class Bad:
        def __dlpack__(self, stream=None, **kw):
            return object()

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(ValueError, match="DLPack capsule"):
        f.read(Bad())


def test_error_factory_codes():
    from kvik.errors import make

    e = make(-errno.EACCES, "EACCES", "Permission denied", "detail", "/p")
    assert isinstance(e, PermissionError) and isinstance(e, kvik.Error) and e.filename == "/p"
    e = make(_kvik.KVIK_ETIMEDOUT, "KVIK_ETIMEDOUT", "timed out", "slow", None)
    assert isinstance(e, TimeoutError) and e.errno == errno.ETIMEDOUT
    e = make(_kvik.KVIK_ECUDA, "KVIK_ECUDA", "CUDA driver call failed", "cuX failed", None)
    assert type(e) is kvik.Error and e.errno is None and str(e) == "[KVIK_ECUDA] cuX failed"
    assert _kvik.strerror(-errno.ENOENT) == ("ENOENT", os.strerror(errno.ENOENT))


def test_defaults_get_set_and_context_manager():
    before = {n: kvik.defaults.get(n) for n in kvik.defaults.names()}
    assert before["num_threads"] == kvik.defaults.get("thread_pool_nthreads")
    with kvik.defaults.set({"num_threads": 5, "task_size": 8192, "auto_direct_io_read": False}):
        assert kvik.defaults.get("num_threads") == 5
        assert kvik.defaults.get("task_size") == 8192
        assert kvik.defaults.get("auto_direct_io_read") is False
        with kvik.defaults.set("task_size", 4096):
            assert kvik.defaults.get("task_size") == 4096
        assert kvik.defaults.get("task_size") == 8192
    assert {n: kvik.defaults.get(n) for n in kvik.defaults.names()} == before
    # Without `with`, set() sets globally.
    kvik.defaults.set("http_status_codes", [500, 503])
    assert kvik.defaults.get("http_status_codes") == [500, 503]
    kvik.defaults.set("http_status_codes", before["http_status_codes"])
    kvik.defaults.set("compat_mode", "on")
    assert kvik.defaults.get("compat_mode") is kvik.CompatMode.ON
    assert kvik.defaults.is_compat_mode_preferred()
    kvik.defaults.set("compat_mode", before["compat_mode"])


def test_defaults_refusals():
    before = kvik.defaults.get("task_size")
    with pytest.raises(KeyError, match="unknown setting"):
        kvik.defaults.get("nope")
    with pytest.raises(ValueError):
        kvik.defaults.set("task_size", 0)  # kvik's bounds
    with pytest.raises(ValueError):
        kvik.defaults.set("task_size", "big")
    with pytest.raises(ValueError):
        kvik.defaults.set("compat_mode", "sometimes")
    with pytest.raises(ValueError):
        kvik.defaults.set(1, 2)
    with pytest.raises(ValueError):
        kvik.defaults.set()
    # A refused value in a dict leaves the others as they were.
    with pytest.raises(ValueError):
        kvik.defaults.set({"task_size": 8192, "num_threads": 0})
    assert kvik.defaults.get("task_size") == before


def test_cufile_driver_without_cufile():
    assert kvik.cufile_driver.get("is_gds_available") is False
    with pytest.raises(kvik.Error):
        kvik.cufile_driver.get("poll_mode")
    with pytest.raises(KeyError):
        kvik.cufile_driver.get("nope")
    with pytest.raises(KeyError):
        kvik.cufile_driver.set("per_buffer_cache_size", 1)
