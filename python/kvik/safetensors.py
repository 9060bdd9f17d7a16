"""safetensors files through kvik: ``load_file``, ``safe_open`` and ``save_file``, with the
signatures of Hugging Face's ``safetensors.torch`` / ``safetensors.numpy`` and byte-identical
files both ways.

The header is parsed here and checked against the file before any data is read: its length
against the file size, every dtype known, every shape and offset range consistent, no range
outside the data region, no two ranges overlapping, and (as Hugging Face requires) the ranges
covering the data region exactly. A malformed file raises :class:`SafetensorError` (a
ValueError) saying what is wrong.

``load_file`` reads each file's whole data region with one parallel kvik read into one buffer
on the target device (for torch: ``torch.empty(n, dtype=torch.uint8, device=device)``) and
returns views of it, one per tensor; the read starts at the 4 KiB boundary below the data so
that kvik's tasks are page-aligned in the file (up to 4 KiB of header is read again). The
tensors of one file share that buffer's memory.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict, Iterable, Optional, Union

from .cufile import CuFile

__all__ = ["SafetensorError", "load_file", "safe_open", "save_file"]

MAX_HEADER_SIZE = 100_000_000  # Hugging Face's limit
_ALIGN = 4096


class SafetensorError(ValueError):
    """A malformed or unsupported safetensors file, or tensors that cannot be saved."""


# name -> (bits, numpy dtype name, torch dtype name); None where that framework has no such type.
DTYPES = {
    "BOOL": (8, "bool", "bool"),
    "U8": (8, "uint8", "uint8"),
    "I8": (8, "int8", "int8"),
    "F8_E5M2": (8, None, "float8_e5m2"),
    "F8_E4M3": (8, None, "float8_e4m3fn"),
    "F8_E8M0": (8, None, "float8_e8m0fnu"),
    "F8_E4M3FNUZ": (8, None, "float8_e4m3fnuz"),
    "F8_E5M2FNUZ": (8, None, "float8_e5m2fnuz"),
    "I16": (16, "int16", "int16"),
    "U16": (16, "uint16", "uint16"),
    "F16": (16, "float16", "float16"),
    "BF16": (16, None, "bfloat16"),
    "I32": (32, "int32", "int32"),
    "U32": (32, "uint32", "uint32"),
    "F32": (32, "float32", "float32"),
    "C64": (64, "complex64", "complex64"),
    "F64": (64, "float64", "float64"),
    "I64": (64, "int64", "int64"),
    "U64": (64, "uint64", "uint64"),
}
# Hugging Face's Dtype enum order: save_file sorts tensors by it (descending), then by name.
_ORDER = [
    "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
    "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
    "F64", "I64", "U64",
]  # fmt: skip
_SUBBYTE = {"F4", "F6_E2M3", "F6_E3M2"}


class _Entry:
    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype, shape, begin, end):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class _Header:
    __slots__ = ("path", "file_size", "data_start", "metadata", "entries")


def _fail(path, msg) -> SafetensorError:
    return SafetensorError(f"{os.fspath(path)}: {msg}")


def _parse(path, fd: int, file_size: int) -> _Header:
    if file_size < 8:
        raise _fail(path, f"{file_size} bytes: too short for a safetensors file (8-byte header length)")
    (n,) = struct.unpack("<Q", os.pread(fd, 8, 0))
    if n > MAX_HEADER_SIZE:
        raise _fail(path, f"header length {n} exceeds the limit of {MAX_HEADER_SIZE} bytes")
    if 8 + n > file_size:
        raise _fail(path, f"header length {n} runs past the end of the file ({file_size} bytes)")
    raw = os.pread(fd, n, 8)
    if len(raw) != n:
        raise _fail(path, f"short read of the header ({len(raw)} of {n} bytes)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _fail(path, "header is not a JSON object")
    h = _Header()
    h.path = os.fspath(path)
    h.file_size = file_size
    h.data_start = 8 + n
    data_len = file_size - h.data_start
    meta = doc.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise _fail(path, "__metadata__ must map strings to strings")
    h.metadata = meta
    entries = []
    for name, info in doc.items():
        if not isinstance(info, dict):
            raise _fail(path, f"tensor {name!r}: entry is not an object")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            if dtype in _SUBBYTE:
                raise _fail(path, f"tensor {name!r}: dtype {dtype} (sub-byte) is not supported")
            raise _fail(path, f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _fail(path, f"tensor {name!r}: shape {shape!r} is not a list of non-negative ints")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise _fail(path, f"tensor {name!r}: data_offsets {offs!r} is not [begin, end]")
        begin, end = offs
        if begin < 0 or end < begin:
            raise _fail(path, f"tensor {name!r}: data_offsets [{begin}, {end}] is not a range")
        if end > data_len:
            raise _fail(
                path,
                f"tensor {name!r}: data_offsets [{begin}, {end}] run past the end of the data "
                f"({data_len} bytes after the header)",
            )
        count = 1
        for d in shape:
            count *= d
        want = count * DTYPES[dtype][0] // 8
        if end - begin != want:
            raise _fail(
                path,
                f"tensor {name!r}: {end - begin} bytes for {dtype} {shape} (needs {want})",
            )
        entries.append(_Entry(name, dtype, tuple(shape), begin, end))
    prev = None
    pos = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin < pos:
            raise _fail(
                path,
                f"tensors {prev.name!r} [{prev.begin}, {prev.end}] and {e.name!r} "
                f"[{e.begin}, {e.end}] overlap",
            )
        if e.begin > pos:
            raise _fail(path, f"bytes [{pos}, {e.begin}) of the data belong to no tensor")
        pos, prev = e.end, e
    if pos != data_len:
        raise _fail(path, f"bytes [{pos}, {data_len}) of the data belong to no tensor")
    h.entries = {e.name: e for e in entries}
    return h


def _open(path) -> tuple:
    f = CuFile(path, "r")
    try:
        return f, _parse(path, f.fileno(), f.nbytes())
    except BaseException:
        f.close()
        raise


# ------------------------------------------------------------------------------------------
# Frameworks: allocating a byte buffer on a device, and views of it.
# ------------------------------------------------------------------------------------------
def _framework(framework: str) -> str:
    fw = {"pt": "pt", "torch": "pt", "pytorch": "pt", "np": "numpy", "numpy": "numpy",
          "cp": "cupy", "cupy": "cupy"}.get(str(framework).lower())  # fmt: skip
    if fw is None:
        raise ValueError(f"framework {framework!r}: use 'pt', 'numpy' or 'cupy'")
    return fw


def _device_index(device) -> int:
    s = str(device)
    if s == "cuda":
        return 0
    if s.startswith("cuda:"):
        return int(s[5:])
    if isinstance(device, int):
        return device
    raise ValueError(f"device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")


class _Alloc:
    """A flat uint8 buffer of n bytes for one framework and device."""

    def __init__(self, fw: str, device, n: int) -> None:
        self.fw = fw
        if fw == "pt":
            import torch

            self.torch = torch
            dev = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
            self.buf = torch.empty(n, dtype=torch.uint8, device=dev)
            if dev.type == "cuda":
                # The caching allocator may hand out memory that work still queued on the
                # current stream uses; kvik writes it from streams of its own.
                torch.cuda.current_stream(dev).synchronize()
        elif fw == "numpy":
            import numpy

            if str(device) != "cpu":
                raise ValueError(f"framework 'numpy' loads into host memory: device must be 'cpu', not {device!r}")
            self.np = numpy
            self.buf = numpy.empty(n, dtype=numpy.uint8)
        else:
            import cupy

            self.cp = cupy
            with cupy.cuda.Device(_device_index(device)):
                self.buf = cupy.empty(n, dtype=cupy.uint8)
                cupy.cuda.get_current_stream().synchronize()

    def view(self, e: _Entry, off: int):
        bits, np_name, pt_name = DTYPES[e.dtype]
        raw = self.buf[off : off + e.nbytes]
        if self.fw == "pt":
            dt = getattr(self.torch, pt_name, None) if pt_name else None
            if dt is None:
                raise SafetensorError(f"tensor {e.name!r}: this torch has no {e.dtype} ({pt_name})")
            if off % (bits // 8):
                raw = raw.clone()  # torch views need element-aligned offsets
            return raw.view(dt).reshape(e.shape)
        if np_name is None:
            raise SafetensorError(f"tensor {e.name!r}: {self.fw} has no {e.dtype} dtype")
        mod = self.np if self.fw == "numpy" else self.cp
        return raw.view(mod.dtype(np_name)).reshape(e.shape)


def _as_paths(path_or_paths) -> list:
    if isinstance(path_or_paths, (str, bytes, os.PathLike)):
        return [path_or_paths]
    return list(path_or_paths)


def load_file(
    path_or_paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    device: Any = "cuda:0",
    framework: str = "pt",
) -> Dict[str, Any]:
    """Loads every tensor of one or more safetensors files onto device ("cpu", "cuda:N").

    Returns name -> tensor (torch, numpy or CuPy per framework). Several files are read at
    once (one parallel read each, all in flight together); a name found in two files is an
    error. The file data is not copied on the host for device loads beyond kvik's own staging.
    """
    fw = _framework(framework)
    files, plans = [], []
    try:
        for p in _as_paths(path_or_paths):
            f, h = _open(p)
            files.append(f)
            head = h.data_start % _ALIGN
            start = h.data_start - head
            total = h.file_size - start
            plans.append((f, h, head, start, total))
        seen: Dict[str, str] = {}
        for _, h, *_ in plans:
            for name in h.entries:
                if name in seen:
                    raise SafetensorError(f"tensor {name!r} is in both {seen[name]} and {h.path}")
                seen[name] = h.path
        allocs, futs = [], []
        for f, h, head, start, total in plans:
            a = _Alloc(fw, device, total)
            allocs.append(a)
            futs.append(f.pread(a.buf, total, start) if total else None)
        for (f, h, head, start, total), fut in zip(plans, futs):
            if fut is not None:
                got = fut.get()
                if got != total:
                    raise SafetensorError(f"{h.path}: short read ({got} of {total} bytes): file changed?")
        out: Dict[str, Any] = {}
        for (f, h, head, start, total), a in zip(plans, allocs):
            for name, e in h.entries.items():
                out[name] = a.view(e, head + e.begin)
        return out
    finally:
        for f in files:
            f.close()


class safe_open:
    """``with safe_open(path, framework="pt", device="cpu") as f:`` then ``f.keys()``,
    ``f.metadata()``, ``f.get_tensor(name)`` (reads that tensor only)."""

    def __init__(self, filename, framework: str = "pt", device: Any = "cpu") -> None:
        self._fw = _framework(framework)
        self._device = device
        self._file, self._h = _open(filename)

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def keys(self) -> list:
        return sorted(self._h.entries)

    def offset_keys(self) -> list:
        return [e.name for e in sorted(self._h.entries.values(), key=lambda e: e.begin)]

    def metadata(self) -> Optional[Dict[str, str]]:
        return None if self._h.metadata is None else dict(self._h.metadata)

    def get_tensor(self, name: str):
        try:
            e = self._h.entries[name]
        except KeyError:
            raise SafetensorError(f"{self._h.path}: no tensor named {name!r}") from None
        a = _Alloc(self._fw, self._device, e.nbytes)
        if e.nbytes:
            got = self._file.read(a.buf, e.nbytes, self._h.data_start + e.begin)
            if got != e.nbytes:
                raise SafetensorError(f"{self._h.path}: short read of {name!r} ({got} of {e.nbytes} bytes)")
        return a.view(e, 0)


# ------------------------------------------------------------------------------------------
# Saving.
# ------------------------------------------------------------------------------------------
_NP_NAMES = {v[1]: k for k, v in DTYPES.items() if v[1]}
_PT_NAMES = {v[2]: k for k, v in DTYPES.items() if v[2]}


def _describe(name: str, t):
    """(dtype name, shape, object whose memory holds the C-order bytes, sync) for a tensor."""
    mod = type(t).__module__.split(".")[0]
    if mod == "torch":
        pt = str(t.dtype).replace("torch.", "")
        if pt not in _PT_NAMES:
            raise SafetensorError(f"tensor {name!r}: dtype {t.dtype} cannot be saved")
        if not t.is_contiguous():
            raise SafetensorError(f"tensor {name!r} is not contiguous: save t.contiguous()")
        if t.layout != __import__("torch").strided:
            raise SafetensorError(f"tensor {name!r}: only dense tensors can be saved")
        flat = t.detach().reshape(-1)  # parameters that require grad export no buffer
        if flat.numel():
            flat = flat.view(__import__("torch").uint8)
        return _PT_NAMES[pt], tuple(t.shape), flat, ("pt", t.device) if t.is_cuda else None
    dtype = getattr(t, "dtype", None)
    np_name = getattr(dtype, "name", None)
    if np_name is None or np_name not in _NP_NAMES:
        raise SafetensorError(f"tensor {name!r}: {type(t).__name__} of dtype {dtype} cannot be saved")
    if getattr(dtype, "byteorder", "=") == ">":
        raise SafetensorError(f"tensor {name!r}: big-endian data cannot be saved (safetensors is little-endian)")
    flags = getattr(t, "flags", None)
    if flags is not None and not flags.c_contiguous:
        raise SafetensorError(f"tensor {name!r} is not C-contiguous: save a contiguous copy")
    return _NP_NAMES[np_name], tuple(int(d) for d in t.shape), t, None


def _header_bytes(items, metadata) -> tuple:
    doc: Dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise SafetensorError("metadata must map strings to strings")
        doc["__metadata__"] = metadata
    offset = 0
    layout = []
    for name, dtype, shape, obj, nbytes in items:
        doc[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        layout.append((obj, offset, nbytes))
        offset += nbytes
    # serde_json's compact form, as Hugging Face writes it; padded with spaces to 8 bytes.
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return text, layout, offset


def save_file(tensors: Dict[str, Any], filename, metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes tensors (name -> torch / numpy / CuPy array, host or device) to filename in the
    safetensors format, byte-identical to Hugging Face's save_file, straight from where each
    tensor lives (device memory goes through kvik's device path: GDS where it serves)."""
    if not isinstance(tensors, dict):
        raise TypeError("tensors must be a dict of name -> tensor")
    items, syncs = [], set()
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise SafetensorError(f"tensor names must be str, not {type(name).__name__}")
        if name == "__metadata__":
            raise SafetensorError("'__metadata__' cannot be a tensor name")
        dtype, shape, obj, sync = _describe(name, t)
        count = 1
        for d in shape:
            count *= d
        items.append((name, dtype, shape, obj, count * DTYPES[dtype][0] // 8))
        if sync is not None:
            syncs.add(sync)
    items.sort(key=lambda it: (-_ORDER.index(it[1]), it[0].encode("utf-8")))
    header, layout, total = _header_bytes(items, metadata)
    for fw, dev in syncs:
        # torch's __cuda_array_interface__ names no stream: finish the work that makes the data.
        __import__("torch").cuda.synchronize(dev)
    with CuFile(filename, "w") as f:
        prefix = struct.pack("<Q", len(header)) + header
        f.raw_write(prefix, len(prefix), 0)
        base = len(prefix)
        futs = [f.pwrite(obj, n, base + off) for obj, off, n in layout if n]
        for fut in futs:
            fut.get()
