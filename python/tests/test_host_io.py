"""Host-memory I/O over numpy arrays and other buffers: the grid of the C tests, smaller."""

import array
import os
import threading

import numpy as np
import pytest

import kvik

SIZES = [0, 1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 4099]
OFFSETS = [0, 1, 4096, 12289]
TASKS = [4096, 65536, None]
THREADS = [1, 3, 16]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    n = (1 << 20) + 4099 + 12289
    rng = np.random.default_rng(7)
    blob = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    p = tmp_path_factory.mktemp("io") / "big"
    p.write_bytes(blob)
    return p, blob


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("task_size", TASKS)
def test_read_grid(big, threads, task_size):
    path, blob = big
    with kvik.defaults.set("num_threads", threads), kvik.CuFile(path) as f:
        for size in SIZES:
            for off in OFFSETS:
                a = np.full(size, 0xAB, dtype=np.uint8)
                n = f.read(a, size, off, task_size)
                assert n == size
                assert a.tobytes() == blob[off : off + size], (size, off)
                b = np.zeros(size, dtype=np.uint8)
                assert f.pread(b, file_offset=off, task_size=task_size).get() == size
                assert b.tobytes() == blob[off : off + size]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("task_size", TASKS)
def test_write_grid(tmp_path, threads, task_size, data):
    with kvik.defaults.set({"num_threads": threads}):
        for size in SIZES:
            for off in OFFSETS:
                p = tmp_path / f"w{size}_{off}"
                src = np.frombuffer(data(size, seed=size + off), dtype=np.uint8)
                with kvik.CuFile(p, "w") as f:
                    assert f.write(src, file_offset=off, task_size=task_size) == size
                got = p.read_bytes()
                assert len(got) == (off + size if size else 0) or size == 0
                assert got[off:] == src.tobytes()
                assert got[:off] == b"\0" * off if size else True


def test_raw_read_write_and_dev_offset(tmp_path, data):
    blob = data(10000)
    p = tmp_path / "raw"
    with kvik.CuFile(p, "w+") as f:
        assert f.raw_write(np.frombuffer(blob, np.uint8)) == 10000
        a = np.zeros(10000, np.uint8)
        assert f.raw_read(a, 100, file_offset=5, dev_offset=7) == 100
        assert a[7:107].tobytes() == blob[5:105]
        assert not a[:7].any() and not a[107:].any()
        assert f.raw_write(np.frombuffer(blob, np.uint8), 10, file_offset=0, dev_offset=50) == 10
    assert p.read_bytes()[:10] == blob[50:60]


def test_many_buffer_kinds(tmp_path, data):
    blob = data(4096 * 3 + 5)
    p = tmp_path / "kinds"
    with kvik.CuFile(p, "w") as f:
        assert f.write(blob) == len(blob)  # bytes
        assert f.write(memoryview(blob)[10:20], file_offset=len(blob)) == 10
    with kvik.CuFile(p) as f:
        ba = bytearray(len(blob))
        assert f.read(ba) == len(blob) and bytes(ba) == blob
        mv = memoryview(bytearray(100))
        assert f.read(mv[10:60], file_offset=3) == 50 and bytes(mv[10:60]) == blob[3:53]
        arr = array.array("i", [0] * 16)
        assert f.read(arr) == 64 and arr.tobytes() == blob[:64]
        m2 = np.zeros((8, 8), np.float32, order="F")  # Fortran-contiguous: accepted as bytes
        assert f.read(m2) == 256 and m2.tobytes(order="A") == blob[:256]


def test_end_of_file(tmp_path, data):
    blob = data(5000)
    p = tmp_path / "eof"
    p.write_bytes(blob)
    with kvik.CuFile(p) as f:
        a = np.zeros(8192, np.uint8)
        assert f.read(a) == 5000  # short read at end of file is a count
        assert a[:5000].tobytes() == blob
        assert f.read(a, file_offset=5000) == 0
        assert f.read(a, file_offset=1 << 40) == 0
        assert f.raw_read(a, file_offset=4000) == 1000


class DLPackOnly:
    """An object with only DLPack (like a torch CPU tensor): delegates to numpy."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, stream=None, **kw):
        return self.arr.__dlpack__()

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


def test_dlpack_cpu(tmp_path, data):
    if not hasattr(np.ndarray, "__dlpack__"):
        pytest.skip("this numpy has no __dlpack__ (numpy >= 1.22 needed)")
    blob = data(3000)
    p = tmp_path / "dl"
    with kvik.CuFile(p, "w") as f:
        assert f.write(DLPackOnly(np.frombuffer(blob, np.uint8).copy())) == 3000
    a = np.zeros(3000, np.uint8)
    with kvik.CuFile(p) as f:
        assert f.read(DLPackOnly(a)) == 3000
    assert a.tobytes() == blob
    with pytest.raises(ValueError, match="non-contiguous"):
        with kvik.CuFile(p) as f:
            f.read(DLPackOnly(np.zeros((10, 10), np.uint8)[:, ::2]))


def test_future_from_many_threads(big):
    path, blob = big
    with kvik.CuFile(path) as f:
        a = np.zeros(1 << 20, np.uint8)
        fut = f.pread(a, task_size=4096)
        results, errors = [], []

        def waiter():
            try:
                results.append(fut.get())
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        ts = [threading.Thread(target=waiter) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert errors == []
        assert results == [1 << 20] * 8
        assert fut.done() and fut.get() == 1 << 20
        assert a.tobytes() == blob[: 1 << 20]


def test_future_dropped_before_done(big):
    # The future holds the buffer; dropping both must wait for the I/O, not free under it.
    path, blob = big
    with kvik.CuFile(path) as f:
        for _ in range(20):
            f.pread(np.zeros(1 << 20, np.uint8), task_size=4096)


def test_close_with_io_in_flight(big):
    path, blob = big
    f = kvik.CuFile(path)
    a = np.zeros(1 << 20, np.uint8)
    fut = f.pread(a, task_size=4096)
    f.close()  # the file stays open for the read in flight
    assert f.closed
    assert fut.get() == 1 << 20
    assert a.tobytes() == blob[: 1 << 20]


def test_file_facts(tmp_path):
    p = tmp_path / "facts"
    with kvik.CuFile(p, "w+") as f:
        assert not f.closed
        assert f.fileno() >= 0
        assert f.open_flags() & os.O_ACCMODE == os.O_RDWR
        assert isinstance(f.is_direct_io_supported(), bool)
        info = f.info()
        assert info["path"] == "posix" and info["readable"] and info["writable"]
        assert f.write(b"x" * 10) == 10
        assert f.nbytes() == 10
        assert "kvik.CuFile" in repr(f)
    assert f.closed and "closed" in repr(f)
    f.close()  # twice is fine
    with kvik.CuFile(p, "r") as f:
        assert f.open_flags() & os.O_ACCMODE == os.O_RDONLY


def test_compat_mode_argument(tmp_path):
    p = tmp_path / "c"
    p.write_bytes(b"abc")
    with kvik.CuFile(p, compat_mode=kvik.CompatMode.ON) as f:
        assert f.info()["compat"] == int(kvik.CompatMode.ON)
    with kvik.CuFile(p, compat_mode="auto") as f:
        assert f.info()["compat"] == int(kvik.CompatMode.AUTO)


def test_drop_file_page_cache(tmp_path):
    p = tmp_path / "drop"
    p.write_bytes(b"y" * 100000)
    kvik.drop_file_page_cache(p)
    kvik.drop_file_page_cache(str(p), 4096, 8192, sync_first=False)
    with open(p, "rb") as fo:
        kvik.drop_file_page_cache(fo)
        kvik.drop_file_page_cache(fo.fileno())
    with pytest.raises(FileNotFoundError):
        kvik.drop_file_page_cache(tmp_path / "missing")


def test_memory_register_host_is_noop():
    a = np.zeros(100, np.uint8)
    kvik.memory_register(a)
    kvik.memory_deregister(a)


def test_bounce_buffers():
    st = kvik.bounce_buffer_stats()
    assert set(st) == {"allocated", "in_use", "peak", "pinned"}
    assert kvik.bounce_buffer_free() >= 0


def test_threads_share_one_file(big):
    """Eight Python threads read different ranges of one CuFile at once (raw_read, read and
    pread), each into its own array."""
    path, blob = big
    errors = []
    with kvik.CuFile(path) as f:

        def worker(i):
            try:
                for j in range(10):
                    off = (i * 10 + j) * 9973
                    a = np.zeros(50000, np.uint8)
                    call = (f.raw_read, f.read, lambda b, n, o: f.pread(b, n, o).get())[j % 3]
                    assert call(a, 50000, off) == 50000
                    assert a.tobytes() == blob[off : off + 50000], (i, j)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert errors == []
