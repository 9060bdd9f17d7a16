"""kvik: move bytes between files and host or GPU memory, with kvikio's Python API.

``import kvik as kvikio`` keeps kvikio code working for the calls kvik has (CuFile, RemoteFile,
defaults, cufile_driver, memory_register, stream_register, Mmap, get_page_cache_info,
drop_file_page_cache, drop_system_page_cache); docs/python.md lists where kvik differs.
``kvik.safetensors`` loads and saves safetensors files.
"""

from __future__ import annotations

import os as _os

from . import _kvik
from . import errors as _errors

_kvik._set_error_factory(_errors.make)

from . import cufile_driver, defaults  # noqa: E402
from ._buffer import as_buffer as _as_buffer  # noqa: E402
from .cufile import CuFile, IOFuture, IOFutureStream  # noqa: E402
from .defaults import CompatMode  # noqa: E402
from .errors import Error  # noqa: E402
from .mmap import Mmap  # noqa: E402
from .remote_file import (  # noqa: E402
    RemoteEndpointType,
    RemoteFile,
    infer_remote_endpoint_type,
    is_remote_file_available,
)

__version__ = _kvik.version()

__all__ = [
    "__version__",
    "CompatMode",
    "CuFile",
    "Error",
    "IOFuture",
    "IOFutureStream",
    "Mmap",
    "RemoteEndpointType",
    "RemoteFile",
    "bounce_buffer_free",
    "bounce_buffer_stats",
    "clear_page_cache",
    "cuda_available",
    "cufile_available",
    "cufile_driver",
    "defaults",
    "drop_file_page_cache",
    "drop_system_page_cache",
    "get_page_cache_info",
    "infer_remote_endpoint_type",
    "is_remote_file_available",
    "memory_deregister",
    "memory_register",
    "prepare",
    "stream_deregister",
    "stream_register",
]


def cuda_available() -> bool:
    """True if the CUDA driver loads and has a device (kvik_cuda_available)."""
    return _kvik.cuda_available()


def cufile_available() -> bool:
    """True if libcufile loads and its driver opens (kvik_cufile_available)."""
    return _kvik.cufile_available()


def _allocation(buf):
    b = _as_buffer(buf)
    if not b.device or b.nbytes == 0:
        return b, None, 0
    info = _kvik.mem_info(b.ptr, b.nbytes)
    if info["kind"] != "device":
        return b, None, 0
    if info["range_known"]:
        return b, info["base"], info["alloc_size"]
    return b, b.ptr, b.nbytes


def memory_register(buf) -> None:
    """Registers the device allocation holding buf with cuFile (the whole allocation, as kvikio
    does). Host memory is left alone (a no-op, as in kvikio's compat mode)."""
    _, base, size = _allocation(buf)
    if base is not None:
        _kvik.buffer_register(base, size)


def memory_deregister(buf) -> None:
    """Deregisters the allocation registered by memory_register(buf)."""
    _, base, _ = _allocation(buf)
    if base is not None:
        _kvik.buffer_deregister(base)


def stream_register(raw_stream, flags: int = 0) -> None:
    """Registers a CUDA stream with cuFile (optional: kvik's own stream ordering needs none)."""
    from .cufile import _stream_handle

    _kvik.stream_register(_stream_handle(raw_stream), flags)


def stream_deregister(raw_stream) -> None:
    from .cufile import _stream_handle

    _kvik.stream_deregister(_stream_handle(raw_stream))


def prepare(device: int | None = None) -> None:
    """Does a process's first-read setup now (kvik_prepare, a kvik addition): reads the
    settings, starts the default pool's workers and, with a device ordinal, loads CUDA and pins
    one bounce buffer per worker so the first device read pins nothing. Optional and idempotent.
    device None: host only. Raises kvik.Error (KVIK_ENOCUDA without a CUDA driver, KVIK_EINVAL
    for a device that does not exist)."""
    _kvik.prepare(-1 if device is None else int(device))


def bounce_buffer_free() -> int:
    """Frees the bounce buffers not in use; returns the bytes freed."""
    before = _kvik.bounce_stats()["allocated"]
    _kvik.bounce_trim()
    after = _kvik.bounce_stats()["allocated"]
    return (before - after) * defaults.get("bounce_buffer_size")


def bounce_buffer_stats() -> dict:
    """The bounce-buffer pool's counters (kvik addition): allocated, in_use, peak, pinned."""
    return _kvik.bounce_stats()


def drop_file_page_cache(file, offset: int = 0, length: int = 0, sync_first: bool = True) -> None:
    """Drops the page cache of [offset, offset + length) of a file (length 0: to the end), with
    posix_fadvise(POSIX_FADV_DONTNEED) after fdatasync when sync_first. file: a path, a file
    descriptor or a file object."""
    if isinstance(file, int):
        fd, own = file, False
    elif hasattr(file, "fileno") and not isinstance(file, (str, bytes, _os.PathLike)):
        fd, own = file.fileno(), False
    else:
        fd, own = _os.open(_os.fspath(file), _os.O_RDONLY | _os.O_CLOEXEC), True
    try:
        if sync_first:
            _os.fdatasync(fd)
        _os.posix_fadvise(fd, offset, length, _os.POSIX_FADV_DONTNEED)
    finally:
        if own:
            _os.close(fd)


def _page_cache_target(file):
    """A path (str, bytes, os.PathLike) or a file descriptor (int, or file.fileno())."""
    if isinstance(file, (int, str, bytes, _os.PathLike)) and not isinstance(file, bool):
        return file
    if hasattr(file, "fileno"):
        return file.fileno()
    raise _BadFileArgument(
        f"file must be a path, a file descriptor or a file object, not {type(file).__name__}"
    )


class _BadFileArgument(TypeError, ValueError):
    """A TypeError, as Python raises for a wrong argument type, and a ValueError, as kvikio
    raises for it."""


def get_page_cache_info(file) -> tuple:
    """(cached_pages, total_pages): how many of the file's pages are in the page cache, and how
    many pages it has, in pages of the system's page size. file: a path, a file descriptor or
    a file object (its descriptor; the mincore fallback needs it open for reading). Neither
    reads the file nor changes what is cached; a snapshot (kvik_page_cache_info). On tmpfs
    every page counts as cached."""
    return _kvik.page_cache_info(_page_cache_target(file), 0, 0)


def drop_system_page_cache(
    reclaim_dentries_and_inodes: bool = True, sync_first: bool = True
) -> bool:
    """Drops the whole system's page cache after sync(2), as ``sync; echo 3 >
    /proc/sys/vm/drop_caches`` (kvik_drop_system_cache). Needs root (CAP_SYS_ADMIN): otherwise
    raises PermissionError (a kvik.Error) saying so, where kvikio returns False after trying
    sudo. Returns True. kvik always syncs first and reclaims dentries and inodes too, so the
    two arguments must stay True (ValueError otherwise). For one file, without privileges, use
    drop_file_page_cache()."""
    if not reclaim_dentries_and_inodes or not sync_first:
        raise ValueError(
            "drop_system_page_cache: kvik always syncs first and drops page cache, dentries and "
            "inodes (drop_caches=3); reclaim_dentries_and_inodes=False and sync_first=False are "
            "not supported"
        )
    _kvik.drop_system_cache()
    return True


def clear_page_cache(
    reclaim_dentries_and_inodes: bool = True, clear_dirty_pages: bool = True
) -> bool:
    """Deprecated (as in kvikio 26.04): use drop_system_page_cache()."""
    import warnings

    warnings.warn(
        "clear_page_cache is deprecated: use drop_system_page_cache", DeprecationWarning, 2
    )
    return drop_system_page_cache(reclaim_dentries_and_inodes, clear_dirty_pages)
