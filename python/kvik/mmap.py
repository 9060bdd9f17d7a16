"""``kvik.Mmap``: kvikio's memory-mapped file handle, by the same names, on kvik_mmap_*.

Reads copy from the mapping into host memory (memcpy) or device memory (the CUDA driver copies
from the mapping); ``pread`` splits the copy into task-size chunks on kvik's thread pool, host
and device alike. Where kvik differs from kvikio is listed in docs/python.md.
"""

from __future__ import annotations

import mmap as _mmap
import os
from typing import Any, Optional

from . import _kvik
from ._buffer import as_buffer, span
from .cufile import IOFuture, _offset, _task_size

__all__ = ["Mmap"]

# map_flags kvik accepts: the sharing type only (kvik always maps MAP_SHARED; MAP_PRIVATE is
# the same thing for a read-only mapping, whose pages are never copied on write).
_SHARING = _mmap.MAP_SHARED | _mmap.MAP_PRIVATE


class Mmap:
    """A memory-mapped file (kvikio's ``Mmap``), read into host or device memory.

    Parameters
    ----------
    file_path: path-like
        The file.
    flags: str
        "r" maps the file read-only (kvikio's only flag). kvik additions: "r+" maps it
        read-write (the file must exist); "w" and "w+" create or truncate it, size it to
        ``initial_map_offset + initial_map_size`` and map it read-write ("w" refuses reads).
    initial_map_size: int or None
        Bytes to map; None maps from ``initial_map_offset`` to the end of the file. 0 is refused
        (as in kvikio). The range may reach past the end of the file (kvikio refuses that):
        reads stop at the file's end.
    initial_map_offset: int
        File offset of the mapped range (need not be page-aligned).
    mode: int
        Permission bits of a file "w"/"w+" creates (default 0o644).
    map_flags: int or None
        None, ``mmap.MAP_SHARED`` or ``mmap.MAP_PRIVATE`` (read-only "r" only); other mmap(2)
        flags are refused with ValueError.
    """

    def __init__(
        self,
        file_path: os.PathLike,
        flags: str = "r",
        initial_map_size: Optional[int] = None,
        initial_map_offset: int = 0,
        mode: int = 0o644,
        map_flags: Optional[int] = None,
    ) -> None:
        self._handle = None
        if initial_map_size is None:
            size = 0
        elif not isinstance(initial_map_size, int) or isinstance(initial_map_size, bool):
            raise TypeError(f"initial_map_size must be an int or None, not {initial_map_size!r}")
        elif initial_map_size <= 0:
            raise ValueError(
                f"Mmap: initial_map_size must be positive (None maps to the end of the file), "
                f"not {initial_map_size}"
            )
        else:
            size = initial_map_size
        off = _offset("initial_map_offset", initial_map_offset)
        if map_flags is not None:
            if not isinstance(map_flags, int) or map_flags & ~_SHARING:
                raise ValueError(
                    f"Mmap: map_flags {map_flags!r} not supported: kvik takes only "
                    "mmap.MAP_SHARED or mmap.MAP_PRIVATE"
                )
            if map_flags & _mmap.MAP_PRIVATE and str(flags).rstrip("b") != "r":
                raise ValueError(
                    "Mmap: MAP_PRIVATE only with flags 'r' (kvik's writable mappings are shared, "
                    "so writes reach the file)"
                )
        self._handle = _kvik.Mmap(os.fspath(file_path), str(flags), size, off, mode)
        self._offset, self._size = self._handle.range()

    def initial_map_size(self) -> int:
        """Size in bytes of the mapped range (as resolved when the handle was made)."""
        return self._size

    def initial_map_offset(self) -> int:
        """File offset of the mapped range."""
        return self._offset

    def file_size(self) -> int:
        """The file's current size in bytes; 0 once closed (as in kvikio)."""
        if self.closed():
            return 0
        return self._handle.file_size()

    def close(self) -> None:
        """Unmaps the file and closes it; does nothing if closed. Operations in flight keep the
        mapping until they finish."""
        if self._handle is not None:
            self._handle.close()

    def closed(self) -> bool:
        """True once closed (a method, as in kvikio; CuFile.closed is a property)."""
        return self._handle is None or self._handle.closed

    def __enter__(self) -> "Mmap":
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed() else f"[{self._offset}, {self._offset + self._size})"
        return f"<kvik.Mmap {state}>"

    def _check_open(self, what: str) -> None:
        if self.closed():
            raise _ClosedMmapError(f"Mmap.{what}: cannot {what} a closed Mmap")

    def _args(self, what: str, buf, size, offset, writable: bool):
        self._check_open(what)
        b = as_buffer(buf)
        off = _offset("offset", offset)
        if size is None:
            if writable:
                # kvikio: None reads from offset to the end of the file (within the buffer).
                size = max(0, self._handle.file_size() - off)
            else:
                size = b.nbytes
        n = span(b, size, 0, writable=writable)
        if (off < self._offset or off + n > self._offset + self._size):
            raise IndexError(
                f"Mmap.{what}: [{off}, {off + n}) is outside the mapped range "
                f"[{self._offset}, {self._offset + self._size})"
            )
        return b, n, off

    def read(self, buf: Any, size: Optional[int] = None, offset: int = 0) -> int:
        """Copies size bytes (None: from offset to the end of the file) at file offset offset
        into buf (host or device memory), on this thread with the GIL released. Returns the
        bytes read: fewer only where the file ends first. IndexError if the range is outside
        the mapped range."""
        b, n, off = self._args("read", buf, size, offset, True)
        return self._handle.read(b.ptr, n, off)

    def pread(
        self,
        buf: Any,
        size: Optional[int] = None,
        offset: int = 0,
        task_size: Optional[int] = None,
    ) -> IOFuture:
        """read() in parallel: task-size chunks (None: ``defaults.get("task_size")``) on kvik's
        thread pool. Returns an IOFuture; it keeps buf and the mapping alive until done."""
        b, n, off = self._args("pread", buf, size, offset, True)
        return IOFuture(self._handle.pread(b.ptr, n, off, _task_size(task_size), b))

    def write(self, buf: Any, size: Optional[int] = None, offset: int = 0) -> int:
        """Copies size bytes of buf (None: all of it) into the mapping at file offset offset,
        growing the file if the range passes its end (kvik addition; flags "r+", "w" or
        "w+"). The bytes reach the page cache at once, the disk at sync() or writeback."""
        b, n, off = self._args("write", buf, size, offset, False)
        return self._handle.write(b.ptr, n, off)

    def pwrite(
        self,
        buf: Any,
        size: Optional[int] = None,
        offset: int = 0,
        task_size: Optional[int] = None,
    ) -> IOFuture:
        """write() in parallel, as pread (kvik addition)."""
        b, n, off = self._args("pwrite", buf, size, offset, False)
        return IOFuture(self._handle.pwrite(b.ptr, n, off, _task_size(task_size), b))

    def sync(self) -> None:
        """Writes the mapping's dirty pages to the file and waits (msync; kvik addition)."""
        self._check_open("sync")
        self._handle.sync()


class _ClosedMmapError(ValueError, RuntimeError):
    """An operation on a closed Mmap: a ValueError as for Python's closed files and CuFile, and
    a RuntimeError as kvikio raises."""
