"""kvik.get_page_cache_info, drop_file_page_cache and drop_system_page_cache: counts checked
against what the test made the kernel cache (posix_fadvise on a disk-backed file), tmpfs, the
argument forms kvikio takes (its test_get_page_cache_info, ported at the end) and the errors."""

import errno
import io
import mmap
import os
import tempfile

import pytest

import kvik
import kvik as kvikio

PAGE = mmap.PAGESIZE
NPAGES = 256


def _disk_dir():
    """A directory on a file system that can drop a file's pages (/var/tmp, else the cwd)."""
    for d in ("/var/tmp", os.getcwd()):
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    pytest.skip("no writable disk-backed directory (/var/tmp or the working directory)")


@pytest.fixture
def disk_file():
    fd, path = tempfile.mkstemp(prefix="kvik-pagecache-", dir=_disk_dir())
    try:
        os.write(fd, os.urandom(NPAGES * PAGE + 100))  # a partial last page
        os.fdatasync(fd)
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def _drop(path, offset=0, length=0):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_half_cached(disk_file):
    total = NPAGES + 1
    _drop(disk_file)
    cached, n = kvik.get_page_cache_info(disk_file)
    assert n == total
    if cached != 0:
        pytest.skip(f"this file system keeps dropped pages ({cached} of {n} still cached)")
    # Read the first half in, then drop the second half (readahead may have touched it).
    half = NPAGES // 2
    with open(disk_file, "rb") as f:
        assert len(os.pread(f.fileno(), half * PAGE, 0)) == half * PAGE
    _drop(disk_file, half * PAGE, 0)
    cached, n = kvik.get_page_cache_info(disk_file)
    assert n == total
    # Exactly the first half, unless memory pressure evicted a few pages since.
    assert half * 0.9 <= cached <= half, (cached, half)
    # Every argument form gives the same answer.
    with open(disk_file, "rb") as f:
        assert kvik.get_page_cache_info(f) == (cached, n)
        assert kvik.get_page_cache_info(f.fileno()) == (cached, n)
    # drop_file_page_cache drops the rest.
    kvik.drop_file_page_cache(disk_file)
    assert kvik.get_page_cache_info(disk_file) == (0, total)


def test_tmpfs_all_cached():
    d = "/dev/shm"
    if not os.path.isdir(d) or not os.access(d, os.W_OK):
        pytest.skip("no writable /dev/shm (tmpfs)")
    fd, path = tempfile.mkstemp(dir=d)
    try:
        os.write(fd, b"x" * (10 * PAGE + 1))
        os.close(fd)
        _drop(path)
        assert kvik.get_page_cache_info(path) == (11, 11)
    finally:
        os.unlink(path)


def test_empty_file(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    assert kvik.get_page_cache_info(p) == (0, 0)


def test_errors(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="missing") as e:
        kvik.get_page_cache_info(missing)
    assert isinstance(e.value, kvik.Error) and e.value.errno == errno.ENOENT
    with pytest.raises(IsADirectoryError):
        kvik.get_page_cache_info(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="fifo"):  # never blocks on the FIFO
        kvik.get_page_cache_info(fifo)
    with pytest.raises(OSError) as e:
        kvik.get_page_cache_info(-1)
    assert e.value.errno == errno.EBADF
    for bad in (123.456, ["path_in_a_list"], None, True):
        with pytest.raises(TypeError):
            kvik.get_page_cache_info(bad)
    # A descriptor opened write-only: answered by cachestat, or refused by the mincore fallback.
    wo = tmp_path / "wo"
    wo.write_bytes(b"y" * PAGE)
    fd = os.open(wo, os.O_WRONLY)
    try:
        try:
            cached, n = kvik.get_page_cache_info(fd)
            assert n == 1 and cached in (0, 1)
        except PermissionError:
            pass
    finally:
        os.close(fd)


def test_drop_system_page_cache_arguments():
    # Checked before anything is dropped: the machine's cache is never touched by this test.
    with pytest.raises(ValueError, match="drop_caches=3"):
        kvik.drop_system_page_cache(reclaim_dentries_and_inodes=False)
    with pytest.raises(ValueError):
        kvik.drop_system_page_cache(sync_first=False)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError):
        kvik.clear_page_cache(clear_dirty_pages=False)


def test_drop_system_page_cache_refused_without_root():
    """Run in a child that is not root (or gives up root): the refusal says root is needed. The
    test never drops the machine's cache."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if os.geteuid() == 0:
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                except OSError:
                    code = 3
            if code == 0:
                try:
                    kvik.drop_system_page_cache()
                    msg = "returned"
                except OSError as e:
                    msg = f"{type(e).__name__}|{e.errno}|{isinstance(e, kvik.Error)}|{e}"
                os.write(w, msg.encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, st = os.waitpid(pid, 0)
    if os.WEXITSTATUS(st) == 3:
        pytest.skip("cannot give up root (setuid 65534 refused)")
    assert os.WEXITSTATUS(st) == 0
    name, err, is_kvik, text = out.split("|", 3)
    assert is_kvik == "True", out
    assert int(err) in (errno.EACCES, errno.EPERM, errno.EROFS), out
    assert "/proc/sys/vm/drop_caches" in text, out
    if int(err) != errno.EROFS:
        assert name == "PermissionError" and "needs root" in text, out


# kvikio's test_get_page_cache_info (python/kvikio/tests/test_basic_io.py), import changed, the
# file written from numpy instead of CuPy. kvik raises FileNotFoundError (an OSError) for a
# missing file where kvikio raises RuntimeError, and a wrong argument type is a TypeError that
# is also a ValueError (kvikio's type).
def test_get_page_cache_info(tmp_path):
    """Test getting the page cache information for a file"""
    import numpy

    with pytest.raises(FileNotFoundError):
        nonexistent_file = tmp_path / "nonexistent_file"
        kvikio.get_page_cache_info(nonexistent_file)

    with pytest.raises(ValueError):
        invalid_argument = 123.456
        kvikio.get_page_cache_info(invalid_argument)

    with pytest.raises(ValueError):
        invalid_argument = ["path_in_a_list"]
        kvikio.get_page_cache_info(invalid_argument)

    test_file = tmp_path / "test_file"
    with kvikio.CuFile(test_file, "w") as f:
        num_elements = 10000
        f.write(numpy.linspace(1.0, float(num_elements), num=num_elements))

    # Pass an os.PathLike argument
    arg = test_file
    assert isinstance(arg, os.PathLike)
    num_pages_in_page_cache, num_pages = kvikio.get_page_cache_info(arg)
    assert num_pages_in_page_cache >= 0 and num_pages_in_page_cache <= num_pages

    # Pass a string argument
    arg = str(test_file)
    assert isinstance(arg, str)
    num_pages_in_page_cache, num_pages = kvikio.get_page_cache_info(arg)
    assert num_pages_in_page_cache >= 0 and num_pages_in_page_cache <= num_pages

    # Pass a file descriptor argument
    with open(test_file, "rb") as f:
        arg = f.fileno()
        assert isinstance(arg, int)
        num_pages_in_page_cache, num_pages = kvikio.get_page_cache_info(arg)
        assert num_pages_in_page_cache >= 0 and num_pages_in_page_cache <= num_pages

    # Pass a file object argument
    with open(test_file, "rb") as f:
        arg = f
        assert isinstance(arg, io.IOBase)
        num_pages_in_page_cache, num_pages = kvikio.get_page_cache_info(arg)
        assert num_pages_in_page_cache >= 0 and num_pages_in_page_cache <= num_pages
