"""``kvik.CuFile``: kvikio's file handle, by the same names, on libkvik."""

from __future__ import annotations

import os
from typing import Optional, Union

from . import _kvik
from ._buffer import as_buffer, span

__all__ = ["CuFile", "IOFuture", "IOFutureStream"]


def _compat_value(compat) -> int:
    if compat is None:
        return _kvik.COMPAT_DEFAULT
    from .defaults import CompatMode, _parse_compat

    return int(_parse_compat(compat)) if not isinstance(compat, CompatMode) else int(compat)


def _offset(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be a non-negative int, not {v!r}")
    return v


def _task_size(v) -> int:
    if v is None:
        return 0
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"task_size must be a positive int or None, not {v!r}")
    return v


def _stream_handle(stream) -> int:
    """A raw CUstream from an int, a CuPy stream (.ptr), a torch stream (.cuda_stream) or an
    object with __cuda_stream__ (returns (version, handle))."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    if hasattr(stream, "__cuda_stream__"):
        return int(stream.__cuda_stream__()[1])
    for attr in ("cuda_stream", "ptr", "handle"):
        v = getattr(stream, attr, None)
        if isinstance(v, int):
            return v
    raise TypeError(f"raw_stream: {type(stream).__name__} is not a CUDA stream")


class IOFuture:
    """Future of a :meth:`CuFile.pread` or :meth:`CuFile.pwrite`.

    ``get()`` waits with the GIL released and may be called from several threads; Ctrl-C
    interrupts the wait (``KeyboardInterrupt``) while the I/O finishes in the background: the
    buffer stays referenced by the future until then, and a future dropped before its I/O is
    done waits for it.
    """

    __slots__ = ("_fut",)

    def __init__(self, fut) -> None:
        self._fut = fut

    def get(self) -> int:
        """Waits for the operation; returns the bytes read or written (raises kvik.Error)."""
        return self._fut.get()

    def done(self) -> bool:
        """True once the operation has finished (never blocks)."""
        return self._fut.done()


class IOFutureStream:
    """Future of a stream-ordered :meth:`CuFile.raw_read_async` / :meth:`CuFile.raw_write_async`.

    ``check_bytes_done()`` waits until the stream has passed the operation and returns the
    bytes read or written. Keep the future (or the buffer) alive until then.
    """

    __slots__ = ("_fut",)

    def __init__(self, fut) -> None:
        self._fut = fut

    def check_bytes_done(self) -> int:
        return self._fut.get()

    def done(self) -> bool:
        return self._fut.done()


class CuFile:
    """A file for reading and writing host or device memory (kvikio's ``CuFile``).

    Parameters
    ----------
    file: path-like
        The file to open.
    flags: str
        "r" (read), "w" (write, create, truncate), "r+" (read and write), "w+" (read and write,
        create, truncate); a trailing "b" is ignored. Append ("a") is refused: see docs/python.md.
    compat_mode: CompatMode, bool, str or None (kvik addition)
        This file's compat mode (None: ``defaults.get("compat_mode")``).
    mode: int (kvik addition)
        Permission bits for a created file (default 0o644).
    """

    def __init__(
        self,
        file: Union[os.PathLike, str],
        flags: str = "r",
        *,
        compat_mode=None,
        mode: int = 0o644,
    ) -> None:
        self._handle = _kvik.File(os.fspath(file), str(flags), mode, _compat_value(compat_mode))

    def close(self) -> None:
        """Closes the file (operations still in flight keep it open until they finish)."""
        self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def fileno(self) -> int:
        """The file descriptor (buffered, not O_DIRECT)."""
        return self._handle.fileno()

    def open_flags(self) -> int:
        """The flags of the file descriptor (fcntl F_GETFL, see open(2))."""
        import fcntl

        return fcntl.fcntl(self.fileno(), fcntl.F_GETFL)

    def nbytes(self) -> int:
        """The file's size in bytes (kvik addition)."""
        return self._handle.size()

    def info(self) -> dict:
        """Which path serves this file and why (kvik addition): keys path ("posix", "gds",
        "cufile_compat"), compat, direct_read, direct_write, readable, writable, reason."""
        return self._handle.info()

    def is_direct_io_supported(self) -> bool:
        """True if opportunistic O_DIRECT is in use for reads or writes of this file."""
        i = self._handle.info()
        return bool(i["direct_read"] or i["direct_write"])

    def __enter__(self) -> "CuFile":
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self._handle.path()
        return f"<kvik.CuFile {state}>"

    # Parallel I/O on the pool.
    def pread(
        self, buf, size: Optional[int] = None, file_offset: int = 0, task_size: Optional[int] = None
    ) -> IOFuture:
        """Reads size bytes (None: the buffer's size) at file_offset into buf, in parallel.
        Returns an IOFuture; its get() gives the bytes read (short only at end of file)."""
        b = as_buffer(buf)
        n = span(b, size, 0, writable=True)
        off = _offset("file_offset", file_offset)
        return IOFuture(self._handle.pread(b.ptr, n, off, _task_size(task_size), b))

    def pwrite(
        self, buf, size: Optional[int] = None, file_offset: int = 0, task_size: Optional[int] = None
    ) -> IOFuture:
        """Writes size bytes (None: the buffer's size) of buf at file_offset, in parallel."""
        b = as_buffer(buf)
        n = span(b, size, 0, writable=False)
        off = _offset("file_offset", file_offset)
        return IOFuture(self._handle.pwrite(b.ptr, n, off, _task_size(task_size), b))

    def read(
        self, buf, size: Optional[int] = None, file_offset: int = 0, task_size: Optional[int] = None
    ) -> int:
        """pread(...).get()."""
        return self.pread(buf, size, file_offset, task_size).get()

    def write(
        self, buf, size: Optional[int] = None, file_offset: int = 0, task_size: Optional[int] = None
    ) -> int:
        """pwrite(...).get()."""
        return self.pwrite(buf, size, file_offset, task_size).get()

    # One call on the calling thread.
    def raw_read(
        self, buf, size: Optional[int] = None, file_offset: int = 0, dev_offset: int = 0
    ) -> int:
        """Reads size bytes at file_offset into buf + dev_offset on this thread (the GIL
        released). Host memory is accepted too (kvikio takes device memory only)."""
        b = as_buffer(buf)
        n = span(b, size, dev_offset, writable=True)
        off = _offset("file_offset", file_offset)
        return self._handle.read(b.ptr + dev_offset, n, off)

    def raw_write(
        self, buf, size: Optional[int] = None, file_offset: int = 0, dev_offset: int = 0
    ) -> int:
        """Writes size bytes of buf + dev_offset at file_offset on this thread."""
        b = as_buffer(buf)
        n = span(b, size, dev_offset, writable=False)
        off = _offset("file_offset", file_offset)
        return self._handle.write(b.ptr + dev_offset, n, off)

    # Stream-ordered.
    def raw_read_async(
        self,
        buf,
        raw_stream,
        size: Optional[int] = None,
        file_offset: int = 0,
        dev_offset: int = 0,
    ) -> IOFutureStream:
        """Enqueues a read of size bytes at file_offset into buf + dev_offset on raw_stream (an
        int CUstream, or a CuPy/torch stream object): work enqueued before it on the stream
        runs first, work enqueued after it waits for it. Never blocks the caller."""
        b = as_buffer(buf)
        n = span(b, size, dev_offset, writable=True)
        off = _offset("file_offset", file_offset)
        s = _stream_handle(raw_stream)
        return IOFutureStream(self._handle.read_async(b.ptr + dev_offset, n, off, s, b))

    def raw_write_async(
        self,
        buf,
        raw_stream,
        size: Optional[int] = None,
        file_offset: int = 0,
        dev_offset: int = 0,
    ) -> IOFutureStream:
        """Enqueues a write of size bytes of buf + dev_offset at file_offset on raw_stream."""
        b = as_buffer(buf)
        n = span(b, size, dev_offset, writable=False)
        off = _offset("file_offset", file_offset)
        s = _stream_handle(raw_stream)
        return IOFutureStream(self._handle.write_async(b.ptr + dev_offset, n, off, s, b))
