"""Device memory (fake libcuda): CAI and DLPack buffers, every CuFile call, stream-ordered I/O,
registration, refusals, and Ctrl-C during a wait on a stream that cannot proceed."""

import ctypes
import threading
import _thread

import numpy as np
import pytest

import kvik
from kvik import _kvik

SIZES = [1, 4095, 4097, (1 << 20) + 3]
OFFSETS = [0, 4097]


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    data = np.random.default_rng(3).integers(0, 256, (1 << 20) + 8192, dtype=np.uint8).tobytes()
    p = tmp_path_factory.mktemp("dev") / "blob"
    p.write_bytes(data)
    return p, data


def test_kvik_sees_fake_device(dev):
    assert kvik.cuda_available()
    a = dev(100)
    assert _kvik.mem_info(a.ptr, 100)["kind"] == "device"


@pytest.mark.parametrize("threads", [1, 4])
def test_read_into_device(blob, dev, threads):
    path, data = blob
    with kvik.defaults.set("num_threads", threads), kvik.CuFile(path) as f:
        for size in SIZES:
            for off in OFFSETS:
                a = dev(size)
                assert f.read(a, size, off, 65536) == size
                assert a.bytes() == data[off : off + size], (size, off)
                b = dev(size)
                assert f.pread(b, file_offset=off).get() == size
                assert b.bytes() == data[off : off + size]
                c = dev(size + 10)
                assert f.raw_read(c, size, off, dev_offset=10) == size
                assert c.bytes()[10:] == data[off : off + size]


def test_write_from_device(tmp_path, dev, blob):
    _, data = blob
    for size in SIZES:
        a = dev(size, data=data[:size])
        p = tmp_path / f"w{size}"
        with kvik.CuFile(p, "w") as f:
            assert f.write(a) == size
            assert f.pwrite(a, size, size).get() == size
            assert f.raw_write(a, size - 1, 2 * size, dev_offset=1) == size - 1
        got = p.read_bytes()
        assert got[:size] == data[:size] and got[size : 2 * size] == data[:size]
        assert got[2 * size :] == data[1:size]


def test_device_refusals(blob, dev):
    path, _ = blob
    with kvik.CuFile(path) as f:
        with pytest.raises(ValueError, match="read-only"):
            f.read(dev(16, readonly=True))
        with pytest.raises(ValueError, match="non-contiguous"):
            f.read(dev(64, shape=(4, 4), strides=(16, 2)))
        a = dev(16)
        with pytest.raises(ValueError, match="exceeds"):
            f.read(a, 17)
        with pytest.raises(ValueError, match="exceeds"):
            f.raw_read_async(a, 0, 17)


def test_cai_stream_is_synchronised(cuda, blob, dev):
    path, data = blob
    s = cuda.stream()
    calls = cuda.lib.fake_cuda_calls
    calls.argtypes, calls.restype = [ctypes.c_char_p], ctypes.c_long

    def syncs_of_one_read(a):
        before = calls(b"cuStreamSynchronize")
        with kvik.CuFile(path) as f:
            assert f.read(a) == 4096
        assert a.bytes() == data[:4096]
        return calls(b"cuStreamSynchronize") - before

    # kvik's own I/O synchronises its streams; the array's stream adds exactly one.
    assert syncs_of_one_read(dev(4096, stream=s)) == syncs_of_one_read(dev(4096)) + 1


@pytest.mark.parametrize("which", ["int", "object"])
def test_raw_read_async(cuda, blob, dev, which):
    path, data = blob
    s = cuda.stream()

    class Stream:  # like torch.cuda.Stream
        cuda_stream = s

    with kvik.CuFile(path) as f:
        a = dev(300000)
        fut = f.raw_read_async(a, s if which == "int" else Stream(), 300000, 5, 0)
        assert fut.check_bytes_done() == 300000
        assert a.bytes() == data[5:300005]
        b = dev(100)
        fut = f.raw_read_async(b, s, 50, 7, dev_offset=50)
        assert fut.check_bytes_done() == 50
        assert b.bytes()[50:] == data[7:57]


def test_raw_write_async(cuda, tmp_path, blob, dev):
    _, data = blob
    s = cuda.stream()
    a = dev(70000, data=data[:70000])
    p = tmp_path / "aw"
    with kvik.CuFile(p, "w") as f:
        assert f.raw_write_async(a, s).check_bytes_done() == 70000
        assert f.raw_write_async(a, s, 1000, 70000, dev_offset=3).check_bytes_done() == 1000
    got = p.read_bytes()
    assert got[:70000] == data[:70000] and got[70000:] == data[3:1003]


def test_ctrl_c_while_the_stream_waits(cuda, blob, dev):
    """The read waits on the stream behind a gate (cuStreamWaitValue32 on pinned memory). Ctrl-C
    stops get() with KeyboardInterrupt; the read still completes once the gate opens, into the
    buffer the future kept alive."""
    path, data = blob
    L = cuda.lib
    s = cuda.stream()
    host = ctypes.c_void_p()
    cuda.check(L.cuMemHostAlloc(ctypes.byref(host), 4, 0x2), "cuMemHostAlloc")
    gate = ctypes.c_uint32.from_address(host.value)
    gate.value = 0
    dptr = ctypes.c_uint64()
    cuda.check(L.cuMemHostGetDevicePointer_v2(ctypes.byref(dptr), host, 0), "devptr")
    cuda.check(L.cuStreamWaitValue32_v2(s, dptr.value, 1, 0), "wait")  # GEQ 1
    with kvik.CuFile(path) as f:
        a = dev(8192)
        ptr = a.ptr
        fut = f.raw_read_async(a, s, 8192, 0)
        del a  # the future holds the buffer
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            fut.check_bytes_done()
        timer.join()
        assert not fut.done()
        gate.value = 1
        assert fut.check_bytes_done() == 8192
        assert cuda.dtoh(ptr, 8192) == data[:8192]


def test_memory_register(dev):
    a = dev(1 << 16)
    kvik.memory_register(a)
    with pytest.raises(kvik.Error):
        kvik.memory_register(a)  # already registered
    kvik.memory_deregister(a)
    with pytest.raises(kvik.Error):
        kvik.memory_deregister(a)


# DLPack over fake device memory, built with ctypes as a producer would.
class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                            ("deleter", DELETER)]  # fmt: skip
_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
NAME = b"dltensor"


class DLPackDevice:
    """A producer of DLPack capsules over fake device memory; counts deleter calls."""

    def __init__(self, arr, shape, strides=None, byte_offset=0):
        self.arr, self.deleted, self.streams, self.capsules = arr, 0, [], []
        self.shape = (ctypes.c_int64 * len(shape))(*shape)
        self.strides = (ctypes.c_int64 * len(shape))(*strides) if strides else None
        self.byte_offset = byte_offset

        def deleter(p):
            self.deleted += 1

        self._deleter = DELETER(deleter)

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, stream=None, max_version=None):
        self.streams.append(stream)
        mt = DLManagedTensor()
        mt.dl_tensor.data = self.arr.ptr
        mt.dl_tensor.device = DLDevice(2, 0)
        mt.dl_tensor.ndim = len(self.shape)
        mt.dl_tensor.dtype = DLDataType(1, 8, 1)
        mt.dl_tensor.shape = self.shape
        mt.dl_tensor.strides = self.strides
        mt.dl_tensor.byte_offset = self.byte_offset
        mt.deleter = self._deleter
        self.mt = mt  # kept by the producer for the test's lifetime
        cap = _new_capsule(ctypes.addressof(mt), NAME, None)
        self.capsules.append(cap)
        return cap


def test_dlpack_device(blob, dev):
    path, data = blob
    a = dev(8192)
    prod = DLPackDevice(a, (4096,), byte_offset=100)
    with kvik.CuFile(path) as f:
        assert f.read(prod) == 4096
    assert a.bytes()[100:4196] == data[:4096]
    assert prod.streams == [1]  # the legacy default stream, then synchronised
    assert prod.deleted == 1  # the consumer called the deleter once done
    assert _capsule_name(prod.capsules[0]) == b"used_dltensor"
    bad = DLPackDevice(a, (64, 64), strides=(1, 64 * 2))
    with kvik.CuFile(path) as f, pytest.raises(ValueError, match="non-contiguous"):
        f.read(bad)
    assert bad.deleted == 1


def test_get_releases_the_gil(cuda, blob, dev):
    """While get() waits on a read held behind a gate, another Python thread runs (it needs the
    GIL) and opens the gate: if get() held the GIL this would never finish."""
    path, data = blob
    L = cuda.lib
    s = cuda.stream()
    host = ctypes.c_void_p()
    cuda.check(L.cuMemHostAlloc(ctypes.byref(host), 4, 0x2), "cuMemHostAlloc")
    gate = ctypes.c_uint32.from_address(host.value)
    gate.value = 0
    dptr = ctypes.c_uint64()
    cuda.check(L.cuMemHostGetDevicePointer_v2(ctypes.byref(dptr), host, 0), "devptr")
    cuda.check(L.cuStreamWaitValue32_v2(s, dptr.value, 1, 0), "wait")
    with kvik.CuFile(path) as f:
        a = dev(4096)
        fut = f.raw_read_async(a, s, 4096, 100)
        seen = []

        def opener():
            seen.append(fut.done())  # Python code: runs only if the waiter let the GIL go
            gate.value = 1

        t = threading.Thread(target=opener)
        t.start()
        assert fut.check_bytes_done() == 4096
        t.join()
        assert seen == [False]
        assert a.bytes() == data[100:4196]


def test_prepare_pins_one_buffer_per_worker(blob, dev):
    n = kvik.defaults.get("num_threads")
    kvik.prepare(device=0)
    st = kvik.bounce_buffer_stats()
    assert st["pinned"] and st["in_use"] == 0 and st["allocated"] >= n
    kvik.prepare(device=0)  # idempotent: nothing more
    assert kvik.bounce_buffer_stats()["allocated"] == st["allocated"]
    path, data = blob
    a = dev(len(data))
    with kvik.CuFile(path) as f:
        assert f.read(a) == len(data)
    assert a.bytes() == data
    with pytest.raises(kvik.Error) as ei:
        kvik.prepare(device=99)
    assert ei.value.name == "KVIK_EINVAL" and "does not exist" in str(ei.value)


@pytest.mark.parametrize("threads", [1, 4])
def test_mmap_device(blob, dev, tmp_path, threads):
    """kvik.Mmap reads into and writes from device memory (CAI) through the same buffer code as
    CuFile; the driver copies between the mapping and the device."""
    path, data = blob
    with kvik.defaults.set("num_threads", threads), kvik.Mmap(path) as m:
        for size in SIZES:
            for off in OFFSETS:
                a = dev(size)
                assert m.read(a, size, off) == size
                assert a.bytes() == data[off : off + size], (size, off)
                b = dev(size)
                assert m.pread(b, size, off, task_size=65536).get() == size
                assert b.bytes() == data[off : off + size], (size, off)
        with pytest.raises(ValueError, match="read-only"):
            m.read(dev(10, readonly=True), 10)
    out = tmp_path / "mmap-out"
    src = dev(len(data), data=data)
    with kvik.Mmap(out, "w+", len(data)) as m:
        assert m.pwrite(src, task_size=65536).get() == len(data)
        assert m.write(dev(3, data=b"xyz"), None, 7) == 3
    assert out.read_bytes() == data[:7] + b"xyz" + data[10:]
