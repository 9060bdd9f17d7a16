"""Turning user objects into (address, size, memory kind) for kvik's I/O.

Accepted, tried in this order:

1. ``__cuda_array_interface__`` (CuPy, Numba, PyTorch CUDA tensors), version 0-3. ``strides``
   None or contiguous (C or Fortran order); ``mask`` must be None. A ``stream`` entry other than
   None is synchronised before the I/O (the v3 spec's rule for a consumer that does not work on
   that stream: kvik's I/O runs on streams of its own).
2. DLPack on a CUDA device (``__dlpack_device__`` says CUDA, CUDA host or managed memory): JAX
   and friends. ``__dlpack__(stream=1)`` asks the producer to order its work before the legacy
   default stream, which is then synchronised.
3. The buffer protocol (bytes, bytearray, memoryview, numpy, mmap, array.array).
4. DLPack on the CPU (PyTorch CPU tensors).

Nothing here imports numpy, CuPy or torch.
"""

from __future__ import annotations

from . import _kvik

DLPACK_CPU = 1
DLPACK_CUDA = 2
DLPACK_CUDA_HOST = 3
DLPACK_CUDA_MANAGED = 13

CU_STREAM_LEGACY = 1


class Buffer:
    """Memory resolved from a user object; keeps what owns it alive while referenced."""

    __slots__ = ("ptr", "nbytes", "device", "readonly", "_keep")

    def __init__(self, ptr: int, nbytes: int, device: bool, readonly: bool, keep) -> None:
        self.ptr = ptr
        self.nbytes = nbytes
        self.device = device
        self.readonly = readonly
        self._keep = keep


_cuda = None


def sync_stream(handle: int) -> None:
    """cuStreamSynchronize(handle) through the driver kvik uses (loaded here only when an object
    asks for it)."""
    global _cuda
    import ctypes

    if _cuda is None:
        lib = ctypes.CDLL("libcuda.so.1")
        lib.cuStreamSynchronize.argtypes = [ctypes.c_void_p]
        lib.cuStreamSynchronize.restype = ctypes.c_int
        _cuda = lib
    rc = _cuda.cuStreamSynchronize(ctypes.c_void_p(handle))
    if rc != 0:
        raise RuntimeError(f"cuStreamSynchronize({handle:#x}) failed: CUDA error {rc}")


def _itemsize(typestr: str) -> int:
    if not isinstance(typestr, str) or len(typestr) < 3:
        raise ValueError(f"__cuda_array_interface__: bad typestr {typestr!r}")
    kind, digits = typestr[1], typestr[2:].split("[", 1)[0]
    try:
        n = int(digits)
    except ValueError:
        raise ValueError(f"__cuda_array_interface__: bad typestr {typestr!r}") from None
    return n * 4 if kind == "U" else n


def _contiguous(shape, strides, itemsize: int) -> bool:
    if strides is None or 0 in shape:
        return True
    if len(strides) != len(shape):
        raise ValueError("__cuda_array_interface__: shape and strides differ in length")

    def check(order):
        want = itemsize
        for i in order:
            if shape[i] != 1 and strides[i] != want:
                return False
            want *= shape[i]
        return True

    return check(range(len(shape) - 1, -1, -1)) or check(range(len(shape)))


def _from_cai(obj, cai: dict) -> Buffer:
    if cai.get("mask") is not None:
        raise ValueError("__cuda_array_interface__ with a mask is not supported")
    ptr, readonly = cai["data"]
    shape = tuple(cai["shape"])
    itemsize = _itemsize(cai["typestr"])
    if not _contiguous(shape, cai.get("strides"), itemsize):
        raise ValueError(
            f"non-contiguous array (shape {shape}, strides {tuple(cai['strides'])}): "
            "kvik reads and writes contiguous memory only; pass a contiguous copy"
        )
    nbytes = itemsize
    for s in shape:
        nbytes *= s
    stream = cai.get("stream")
    if stream is not None and cai.get("version", 0) >= 3:
        if stream == 0:
            raise ValueError("__cuda_array_interface__: stream 0 is disallowed by the spec")
        if nbytes:
            sync_stream(int(stream))
    return Buffer(int(ptr or 0), nbytes, True, bool(readonly), obj)


def _from_dlpack(obj, device_type: int) -> Buffer:
    stream = CU_STREAM_LEGACY if device_type == DLPACK_CUDA else None
    try:
        capsule = obj.__dlpack__(stream=stream, max_version=(1, 0))
    except TypeError:
        capsule = obj.__dlpack__(stream=stream)
    view = _kvik.dlpack_view(capsule)
    if not view.contiguous:
        view.release()
        raise ValueError(
            "non-contiguous DLPack tensor: kvik reads and writes contiguous memory only; "
            "pass a contiguous copy"
        )
    if device_type == DLPACK_CUDA and view.nbytes:
        sync_stream(CU_STREAM_LEGACY)
    device = view.device_type != DLPACK_CPU
    return Buffer(view.ptr, view.nbytes, device, view.readonly, (obj, view))


def as_buffer(obj, *, what: str = "buf") -> Buffer:
    """Resolves obj; raises TypeError for an object kvik cannot use, ValueError for one it
    refuses (non-contiguous, masked)."""
    if isinstance(obj, Buffer):
        return obj
    try:
        cai = obj.__cuda_array_interface__
    except AttributeError:
        cai = None
    except Exception:  # torch raises other errors for CPU tensors on some versions
        cai = None
    if cai is not None:
        return _from_cai(obj, cai)
    dl_device = None
    if hasattr(obj, "__dlpack_device__"):
        dl_device = int(obj.__dlpack_device__()[0])
        if dl_device in (DLPACK_CUDA, DLPACK_CUDA_HOST, DLPACK_CUDA_MANAGED):
            return _from_dlpack(obj, dl_device)
    try:
        view = _kvik.buffer_view(obj)
    except (TypeError, BufferError):
        if dl_device is not None and hasattr(obj, "__dlpack__"):
            return _from_dlpack(obj, dl_device)
        raise TypeError(
            f"{what}: {type(obj).__name__} is not a buffer kvik can use (expected an object with "
            "the buffer protocol, __cuda_array_interface__ or __dlpack__)"
        ) from None
    if not view.contiguous:
        view.release()
        raise ValueError(
            f"{what}: non-contiguous buffer: kvik reads and writes contiguous memory only; "
            "pass a contiguous copy"
        )
    return Buffer(view.ptr, view.nbytes, False, view.readonly, (obj, view))


def span(buf: Buffer, size, offset: int, *, writable: bool, what: str = "buf") -> int:
    """Checks that [offset, offset + size) lies in buf (size None: to its end) and, for a read
    target, that buf is writable. Returns the size. All before any I/O."""
    if writable and buf.readonly:
        raise ValueError(f"{what} is read-only: it cannot be the target of a read")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"dev_offset must be a non-negative int, not {offset!r}")
    if offset > buf.nbytes:
        raise ValueError(f"dev_offset {offset} is past the end of {what} ({buf.nbytes} bytes)")
    if size is None:
        return buf.nbytes - offset
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"size must be a non-negative int or None, not {size!r}")
    if size > buf.nbytes - offset:
        raise ValueError(
            f"size {size} exceeds {what}: {buf.nbytes} bytes"
            + (f" less dev_offset {offset}" if offset else "")
        )
    return size
