"""kvik.Mmap beyond kvikio's tests: writes (kvik's addition), short reads at the end of the file,
map_flags, buffer refusals, futures that outlive close(), and the error types."""

import mmap

import numpy as np
import pytest

import kvik


@pytest.fixture
def blob(tmp_path, data):
    d = data(3 * 4096 + 123)
    p = tmp_path / "blob"
    p.write_bytes(d)
    return p, d


def test_read_ranges(blob):
    path, d = blob
    with kvik.Mmap(path, "r", 5000, 100) as m:
        assert (m.initial_map_offset(), m.initial_map_size(), m.file_size()) == (100, 5000, len(d))
        buf = bytearray(5000)
        assert m.read(buf, 5000, 100) == 5000 and bytes(buf) == d[100:5100]
        buf2 = np.zeros(777, dtype=np.uint8)
        assert m.pread(buf2, 777, 4000, task_size=100).get() == 777
        assert buf2.tobytes() == d[4000:4777]
        assert m.read(bytearray(1), 0, 5100) == 0  # 0 bytes at the mapping's end
        with pytest.raises(IndexError):
            m.read(bytearray(1), 0, 99999)  # 0 bytes, but outside the mapping
        with pytest.raises(IndexError, match=r"\[99, 100\) is outside the mapped range"):
            m.read(bytearray(1), 1, 99)
        with pytest.raises(IndexError):
            m.pread(bytearray(2), 2, 5099)
    assert m.closed() and "closed" in repr(m)


def test_read_past_end_is_short(blob):
    path, d = blob
    with kvik.Mmap(path, "r", len(d) + 10000) as m:
        buf = bytearray(len(d) + 10000)
        assert m.read(buf, len(buf), 0) == len(d)
        assert bytes(buf[: len(d)]) == d
        assert m.pread(buf, 100, len(d) - 40).get() == 40
        assert m.read(buf, 100, len(d) + 1) == 0


def test_write_modes(tmp_path, data):
    d = data(20000)
    p = tmp_path / "new"
    with kvik.Mmap(p, "w+", len(d)) as m:
        assert m.file_size() == len(d)
        assert m.write(d[:5000]) == 5000
        assert m.pwrite(np.frombuffer(d, np.uint8)[5000:], None, 5000, task_size=999).get() == 15000
        m.sync()
        back = bytearray(len(d))
        assert m.read(back) == len(d) and bytes(back) == d
    assert p.read_bytes() == d
    with kvik.Mmap(p, "r+") as m:
        assert m.write(b"abc", None, 10) == 3
    assert p.read_bytes() == d[:10] + b"abc" + d[13:]
    with kvik.Mmap(p, "r") as m, pytest.raises(kvik.Error) as e:
        m.write(b"x")
    assert e.value.name == "KVIK_EBADMODE"
    with kvik.Mmap(p, "w", 100) as m, pytest.raises(kvik.Error) as e:
        m.read(bytearray(10), 10)
    assert e.value.name == "KVIK_EBADMODE"


def test_future_outlives_close(blob):
    path, d = blob
    m = kvik.Mmap(path)
    buf = bytearray(len(d))
    fut = m.pread(buf, task_size=4096)
    m.close()  # the future keeps the mapping until it is done
    assert fut.get() == len(d) and bytes(buf) == d
    assert m.closed() and m.file_size() == 0
    m.close()  # again: nothing
    with pytest.raises(ValueError, match="closed Mmap"):
        m.write(b"x")


def test_refusals(blob, tmp_path):
    path, d = blob
    with pytest.raises(ValueError, match="positive"):
        kvik.Mmap(path, "r", 0)
    with pytest.raises(ValueError):
        kvik.Mmap(path, "r", None, -1)
    with pytest.raises(ValueError, match="map_flags"):
        kvik.Mmap(path, "r", map_flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0x8000))
    with pytest.raises(ValueError, match="MAP_PRIVATE"):
        kvik.Mmap(path, "r+", map_flags=mmap.MAP_PRIVATE)
    with kvik.Mmap(path, "r", map_flags=mmap.MAP_PRIVATE) as m:
        assert m.read(bytearray(10), 10) == 10
    with pytest.raises(ValueError, match="unknown flags"):
        kvik.Mmap(path, "a")
    with pytest.raises(IsADirectoryError):
        kvik.Mmap(tmp_path)
    with kvik.Mmap(path) as m:
        with pytest.raises(ValueError, match="read-only"):
            m.read(b"immutable")
        with pytest.raises(ValueError, match="exceeds"):
            m.read(bytearray(10), 11)
        with pytest.raises(ValueError, match="exceeds"):
            m.read(bytearray(10))  # None: to the end of the file, more than the buffer holds
        with pytest.raises(ValueError, match="non-contiguous"):
            m.read(np.zeros((4, 4), np.uint8)[:, 1])
        with pytest.raises(TypeError):
            m.read(object())
