"""Fake device memory for the tests: FakeDeviceArray exposes __cuda_array_interface__ (or
DLPack) over memory allocated with the fake libcuda's cuMemAlloc, through ctypes."""

import ctypes
import os

import pytest


class Cuda:
    def __init__(self):
        self.lib = ctypes.CDLL("libcuda.so.1")
        if not hasattr(self.lib, "fake_cuda_live"):
            raise RuntimeError("libcuda.so.1 here is not kvik's fake")
        L = self.lib
        vp, sz, u = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint
        for name, args in {
            "cuInit": [u],
            "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(vp), ctypes.c_int],
            "cuCtxSetCurrent": [vp],
            "cuMemAlloc_v2": [ctypes.POINTER(ctypes.c_uint64), sz],
            "cuMemFree_v2": [ctypes.c_uint64],
            "cuMemcpyHtoD_v2": [ctypes.c_uint64, vp, sz],
            "cuMemcpyDtoH_v2": [vp, ctypes.c_uint64, sz],
            "cuStreamCreate": [ctypes.POINTER(vp), u],
            "cuStreamSynchronize": [vp],
            "cuStreamDestroy_v2": [vp],
            "cuMemHostAlloc": [ctypes.POINTER(vp), sz, u],
            "cuMemHostGetDevicePointer_v2": [ctypes.POINTER(ctypes.c_uint64), vp, u],
            "cuStreamWaitValue32_v2": [vp, ctypes.c_uint64, ctypes.c_uint32, u],
        }.items():
            f = getattr(L, name)
            f.argtypes = args
            f.restype = ctypes.c_int
        self.check(L.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self.check(L.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        ctx = ctypes.c_void_p()
        self.check(L.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "retain")
        self.ctx = ctx
        self.current()

    def current(self):
        self.check(self.lib.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")

    @staticmethod
    def check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what} failed: CUDA error {rc}")

    def alloc(self, n):
        p = ctypes.c_uint64()
        self.check(self.lib.cuMemAlloc_v2(ctypes.byref(p), max(n, 1)), "cuMemAlloc")
        return p.value

    def htod(self, dst, data: bytes):
        buf = ctypes.create_string_buffer(data, len(data))
        self.check(self.lib.cuMemcpyHtoD_v2(dst, buf, len(data)), "HtoD")

    def dtoh(self, src, n) -> bytes:
        buf = ctypes.create_string_buffer(n)
        self.check(self.lib.cuMemcpyDtoH_v2(buf, src, n), "DtoH")
        return buf.raw

    def stream(self):
        s = ctypes.c_void_p()
        self.check(self.lib.cuStreamCreate(ctypes.byref(s), 0), "cuStreamCreate")
        return s.value


class FakeDeviceArray:
    """n bytes of fake device memory, as CuPy would show them (CAI v3)."""

    def __init__(self, cuda, n, data=None, readonly=False, stream=None, strides=None, shape=None):
        self.cuda, self.n = cuda, n
        self.ptr = cuda.alloc(n)
        if data is not None:
            cuda.htod(self.ptr, data)
        self.__cuda_array_interface__ = {
            "data": (self.ptr, readonly),
            "shape": shape or (n,),
            "strides": strides,
            "typestr": "|u1",
            "version": 3,
            "stream": stream,
        }

    def bytes(self, n=None):
        return self.cuda.dtoh(self.ptr, self.n if n is None else n)


@pytest.fixture(scope="session")
def cuda():
    assert os.environ.get("KVIK_FAKE_CUDA_ACTIVE") == "1"
    return Cuda()


@pytest.fixture(autouse=True)
def _ctx(cuda):
    cuda.current()  # each test thread starts with the fake's primary context current


@pytest.fixture
def dev(cuda):
    return lambda n, **kw: FakeDeviceArray(cuda, n, **kw)
